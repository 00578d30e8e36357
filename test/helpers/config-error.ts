import { expect } from "vitest";
import { ConfigError } from "../../src/config/config-error.js";

/** The message of the ConfigError `fn` throws; fails the test when it throws anything else or nothing. */
export function configError(fn: () => unknown): string {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error("expected a ConfigError");
}
