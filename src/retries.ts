import { setTimeout as sleep } from "node:timers/promises";
import type { NetworkOptions } from "./config/defaults.js";

/**
 * Runs an idempotent network call up to `attempts` times, waiting `retryBaseMs`, then twice that, … between tries,
 * while `retryable` says the failure may pass. The last failure is thrown as it is.
 */
export async function withRetries<T>(
  network: Pick<NetworkOptions, "attempts" | "retryBaseMs">,
  call: (attempt: number) => Promise<T>,
  retryable: (error: unknown) => boolean = () => true,
  signal?: AbortSignal,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await call(attempt);
    } catch (error) {
      if (attempt >= network.attempts || !retryable(error) || signal?.aborted) throw error;
      await sleep(network.retryBaseMs * 2 ** (attempt - 1), undefined, signal ? { signal } : undefined);
    }
  }
}
