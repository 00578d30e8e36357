import type { Progress } from "../jobs/job-context.js";

/**
 * A single self-rewriting line on stderr while a command runs, shown only on a terminal: scripts and `--json` callers
 * get a clean stream.
 */
export function progressLine(label: string): { update(progress: Progress): Promise<void>; done(): void } {
  const tty = process.stderr.isTTY === true;
  let shown = false;
  return {
    async update({ done, total, unit, note }) {
      if (!tty) return;
      const share = total ? ` (${Math.floor((done / Math.max(total, 1)) * 100)}%)` : "";
      process.stderr.write(`\r${label}: ${done}${total !== undefined ? `/${total}` : ""} ${unit}${share}${note ? `, ${note}` : ""}\x1b[K`);
      shown = true;
    },
    done() {
      if (tty && shown) process.stderr.write("\r\x1b[K");
    },
  };
}
