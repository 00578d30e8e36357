import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { tempDir } from "./helpers/temp-dir.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const SCRIPT = join(ROOT, "scripts", "build-if-changed.mjs");

/** `npm start`'s pre-step, in a small project of its own (the real tsc through a link to this checkout's node_modules). */
describe("npm start compiles only when sources changed", () => {
  it("compiles on the first start, skips an unchanged tree, compiles again after an edit", () => {
    const dir = tempDir("build");
    symlinkSync(join(ROOT, "node_modules"), join(dir, "node_modules"));
    mkdirSync(join(dir, "src"));
    writeFileSync(
      join(dir, "tsconfig.json"),
      JSON.stringify({ compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", types: [], outDir: "dist", rootDir: "." } }),
    );
    writeFileSync(join(dir, "tsconfig.build.json"), JSON.stringify({ extends: "./tsconfig.json", include: ["src/**/*.ts"] }));
    writeFileSync(join(dir, "src", "a.ts"), "export const a: number = 1;\n");
    const run = () => spawnSync(process.execPath, [SCRIPT], { cwd: dir, encoding: "utf8" });
    const output = join(dir, "dist", "src", "a.js");

    const first = run();
    expect(first.status).toBe(0);
    expect(first.stderr).toContain("compiling (first start)");
    expect(readFileSync(output, "utf8")).toContain("a = 1");

    const builtAt = statSync(output).mtimeMs;
    const second = run();
    expect(second.status).toBe(0);
    expect(second.stderr).toBe("");
    expect(statSync(output).mtimeMs).toBe(builtAt);

    writeFileSync(join(dir, "src", "a.ts"), "export const a: number = 2;\n");
    const later = new Date(Date.now() + 5_000);
    utimesSync(join(dir, "src", "a.ts"), later, later);
    const third = run();
    expect(third.status).toBe(0);
    expect(third.stderr).toContain("sources changed, compiling");
    expect(readFileSync(output, "utf8")).toContain("a = 2");

    // A build that fails leaves the stamp, so the next start tries again instead of running stale code.
    writeFileSync(join(dir, "src", "a.ts"), "export const a: number = 'three';\n");
    const muchLater = new Date(Date.now() + 10_000);
    utimesSync(join(dir, "src", "a.ts"), muchLater, muchLater);
    expect(run().status).toBe(1);
    expect(run().stderr).toContain("sources changed, compiling");
  });
});
