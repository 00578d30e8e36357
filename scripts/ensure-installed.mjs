// Runs before `npm start` and `npm test`: on a fresh clone, installs the locked dependencies first, so the README's
// quick start is two commands. Does nothing once node_modules matches an install.
import { execSync } from "node:child_process";
import { existsSync } from "node:fs";

if (!existsSync("node_modules/.package-lock.json")) {
  console.error("vectorkeeper: installing dependencies (npm ci) ...");
  execSync("npm ci --no-audit --no-fund", { stdio: ["ignore", "inherit", "inherit"] });
}
