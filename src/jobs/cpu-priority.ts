import { readdirSync } from "node:fs";
import { getPriority, setPriority } from "node:os";
import type { Logger } from "../logging.js";

/** This process's threads by id (Linux); elsewhere none, and only the calling thread can be reached. */
export function threadIds(): number[] {
  try {
    return readdirSync("/proc/self/task").map(Number).filter(Number.isInteger);
  } catch {
    return [];
  }
}

/**
 * Lowers the CPU priority of `threads` (of the calling thread where they cannot be listed) to `nice`. On Linux a priority belongs to a thread,
 * not the process: setting it for the calling thread alone would leave the libuv pool (compression) and V8's helper
 * threads (garbage collection) at their own; threads started later inherit it from the thread that starts them.
 * Never fails the job: a refusal is one warning line. Returns the calling thread's nice value afterwards.
 */
export function lowerCpuPriority(nice: number, threads: readonly number[], logger: Logger): number {
  const refused: string[] = [];
  const ids = threads.length > 0 ? threads : [0];
  for (const id of ids) {
    try {
      // Never raises a priority someone lowered further (a run started under `nice -n 19` stays at 19).
      if (getPriority(id) < nice) setPriority(id, nice);
    } catch (error) {
      // A thread that ended meanwhile is nothing to lower.
      const code = (error as { code?: string }).code;
      if (code !== "ESRCH") refused.push(`${code ?? (error instanceof Error ? error.message : String(error))}`);
    }
  }
  const now = getPriority(0);
  if (refused.length > 0) {
    logger.warn({ nice, reason: refused[0] }, "adaptive pacing: could not lower the job's CPU priority, so it runs at its own");
  } else {
    // Read back, so the line says what the threads run at, not what was asked.
    const atNice = ids.filter((id) => {
      try {
        return getPriority(id) >= nice;
      } catch {
        return false;
      }
    }).length;
    logger.info({ nice: now, threads: atNice }, "adaptive pacing: the job's threads yield the CPU to the host's work");
  }
  return now;
}
