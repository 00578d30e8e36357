import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll } from "vitest";

/** Every folder tempDir() made in this test file (vitest isolates each file's modules, so the list is the file's). */
const made: string[] = [];

// Registered when a test file first imports this module, i.e. at the file's top level, so it belongs to the file's
// root suite: it runs after every describe block's own afterAll and, as vitest runs a suite's afterAll hooks last
// registered first (sequence.hooks "stack"), after the file's own root afterAll hooks too, which is where the file
// stops the CLIs, workers and Chroma servers that may still write into these folders.
afterAll(() => {
  for (const dir of made.splice(0)) rmSync(dir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
});

/**
 * A fresh folder under the system temp dir (`<tmp>/vk-<label>-XXXXXX`), removed with all it holds after the test
 * file's last test. Use it for every folder or file a test makes outside the checkout: a suite run makes thousands.
 */
export function tempDir(label: string): string {
  const dir = mkdtempSync(join(tmpdir(), `vk-${label}-`));
  made.push(dir);
  return dir;
}

/** A path named `name` in a fresh tempDir(label), for a test that needs one file (a key, a log, a schedule). */
export const tempFile = (label: string, name: string): string => join(tempDir(label), name);
