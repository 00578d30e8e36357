import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

/**
 * The dashboard password of `start` when none is set: generated on the first start and kept in a file only its owner
 * can read, so a bookmarked login keeps working across restarts. Delete the file for a new one.
 */
export function keptDashboardPassword(file: string): { password: string; generated: boolean } {
  if (existsSync(file)) {
    const password = readFileSync(file, "utf8").trim();
    if (password) {
      // A copy or an editor may have widened it; it is a secret.
      if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
      return { password, generated: false };
    }
  }
  const password = randomBytes(12).toString("base64url");
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, `${password}\n`, { mode: 0o600 });
  chmodSync(file, 0o600);
  return { password, generated: true };
}
