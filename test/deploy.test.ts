import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import { describe, expect, it } from "vitest";
import { loadSchedule } from "../src/scheduling/schedule-file.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

/** docker-compose.yaml and what it mounts: a schedule that does the job, pinned images, no built-in secret. */
describe("the compose deployment", () => {
  const compose = parse(readFileSync(`${ROOT}docker-compose.yaml`, "utf8"), { merge: true }) as {
    services: Record<string, { image?: string; healthcheck?: { test: string[] }; volumes?: string[] }>;
  };

  it("runs a schedule with nightly backups and retention, expiry, probes and a weekly drill", () => {
    const mount = compose.services.scheduler!.volumes!.find((v) => v.endsWith(":/app/schedule.yaml:ro"))!;
    const schedule = loadSchedule(`${ROOT}${mount.split(":")[0]!.replace(/^\.\//, "")}`, true);
    const kinds = schedule.jobs.map((entry) => entry.kind);
    expect(kinds).toEqual(expect.arrayContaining(["backup", "expire", "probe", "drill"]));
    // The shipped rules warn about a collection not drilled for 8 days: the shipped schedule drills at least weekly.
    expect(schedule.jobs.find((entry) => entry.kind === "drill")!.cron).toMatch(/^\d+ \d+ \* \* [0-6]$/);
    const backup = schedule.jobs.find((entry) => entry.kind === "backup")!;
    expect(backup.cron).toMatch(/^\d+ \d+ \* \* \*$/);
    expect(backup).toHaveProperty("keep");
  });

  it("pins every image to a version, Chroma to the tests' current server release", () => {
    const images = Object.entries(compose.services).flatMap(([, s]) => (s.image ? [s.image] : []));
    for (const image of images.filter((i) => i !== "vectorkeeper:local")) {
      expect(image, image).toMatch(/:[^:]*\d[^:]*$/);
      expect(image, image).not.toMatch(/:latest$/);
    }
    // test/local-chroma.test.ts checks that the current bindings (1.3.4) report this release.
    expect(compose.services.chroma!.image).toBe("chromadb/chroma:1.4.4");
  });

  it("health-checks each vectorkeeper daemon on /readyz and Chroma on its heartbeat", () => {
    for (const daemon of ["worker", "scheduler"]) expect(compose.services[daemon]!.healthcheck!.test.join(" ")).toContain("/readyz");
    expect(compose.services.chroma!.healthcheck!.test.join(" ")).toContain("/api/v2/heartbeat");
  });

  it("refuses to start without credentials from .env, naming what to set, and is valid with them", () => {
    const config = (env: Record<string, string>) =>
      spawnSync("docker-compose", ["-f", "docker-compose.yaml", "config", "-q"], {
        cwd: ROOT,
        env: { PATH: process.env.PATH ?? "", ...env },
        encoding: "utf8",
      });
    const missing = config({ MINIO_ROOT_USER: "", MINIO_ROOT_PASSWORD: "" });
    expect(missing.status).not.toBe(0);
    expect(missing.stderr).toContain("set MINIO_ROOT_USER in .env (see .env.example)");
    const given = config({ MINIO_ROOT_USER: "ci", MINIO_ROOT_PASSWORD: "ci-only-password" });
    expect(given.stderr).toBe("");
    expect(given.status).toBe(0);
    expect(readFileSync(`${ROOT}.env.example`, "utf8")).toMatch(/^MINIO_ROOT_PASSWORD=$/m);
  });
});
