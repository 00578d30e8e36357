import { closeSync, openSync, readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { createLogger } from "../src/logging.js";
import { ThrottledErrorLog } from "../src/throttled-log.js";
import { tempFile } from "./helpers/temp-dir.js";

describe("the rate-limited error log", () => {
  it("logs each distinct error once per interval, counts the repeats, and says once when things work again", () => {
    const file = tempFile("throttle", "log.ndjson");
    const fd = openSync(file, "w");
    let now = 0;
    const log = new ThrottledErrorLog(createLogger("info", fd), "redis", 10_000, () => now);
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:6379\n    at somewhere"), { code: "ECONNREFUSED" });

    for (; now < 25_000; now += 100) log.error(refused, { connection: "worker" }); // 250 failures over 25 s
    log.error(new Error("READONLY You can't write against a read only replica."));
    log.recovered();
    log.recovered(); // nothing more to say
    log.error(refused); // a new outage starts a new count
    closeSync(fd);

    const lines = readFileSync(file, "utf8").trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.map((l) => [l.msg, l.repeatsSinceLastLine])).toEqual([
      ["redis error", 0],
      ["redis error", 99],
      ["redis error", 99],
      ["redis error", 0],
      ["redis connection restored", 49],
      ["redis error", 0],
    ]);
    expect(lines[0]).toMatchObject({ level: 50, connection: "worker", code: "ECONNREFUSED", reason: "connect ECONNREFUSED 127.0.0.1:6379" });
    expect(lines[3]).toMatchObject({ reason: "READONLY You can't write against a read only replica." });
  });

  it("forgets errors unseen for two intervals, and remembers at most maxDistinct (messages with ids stay bounded)", () => {
    const file = tempFile("throttle", "log.ndjson");
    const fd = openSync(file, "w");
    let now = 0;
    const log = new ThrottledErrorLog(createLogger("info", fd), "worker", 10_000, () => now, "error", 3);
    log.error(new Error("old")); // logged
    log.error(new Error("old")); // a repeat, not logged
    now = 25_000;
    log.error(new Error("new")); // logged; "old", quiet for two intervals, is forgotten with its repeat
    log.error(new Error("old")); // logged as a first occurrence
    for (const id of [1, 2, 3, 4]) log.error(new Error(`job ${id} failed`)); // four more: the three newest are kept
    log.error(new Error("job 4 failed")); // remembered: a repeat
    log.error(new Error("old")); // forgotten for room: logged again
    closeSync(fd);

    const lines = readFileSync(file, "utf8").trim().split("\n").map((line) => JSON.parse(line) as Record<string, unknown>);
    expect(lines.map((l) => [l.reason, l.repeatsSinceLastLine])).toEqual([
      ["old", 0],
      ["new", 0],
      ["old", 0],
      ["job 1 failed", 0],
      ["job 2 failed", 0],
      ["job 3 failed", 0],
      ["job 4 failed", 0],
      ["old", 0],
    ]);
  });
});
