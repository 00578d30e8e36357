import { Queue, type Job } from "bullmq";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { DEFAULTS } from "../src/config/defaults.js";
import { createRedisConnection, waitForRedis } from "../src/queues/connection.js";
import { isChromaOutage, redisUsualFailures, slotBackoffStrategy, slotJobOptions } from "../src/queues/slot-retry.js";
import { ChromaUnavailableError } from "../src/storage/chroma/client.js";
import { uniquePrefix } from "./helpers/services.js";

/**
 * The retry decision of scheduled jobs, called as BullMQ's worker calls it after each failed attempt, with a real job
 * in a real Redis (the failures are errors handed to the strategy; the worker's side of this is chroma-outage.test).
 */
describe("retries of a scheduled job", () => {
  const redis = createRedisConnection(inject("redisUrl"), "producer");
  let queue: Queue;
  beforeAll(async () => {
    await waitForRedis(redis, inject("redisUrl"));
    queue = new Queue("backup", { connection: redis, prefix: uniquePrefix("slot-retry") });
  });
  afterAll(async () => {
    await queue.obliterate({ force: true });
    await queue.close();
    redis.disconnect();
  });

  const outage = () => new ChromaUnavailableError("Chroma does not answer at http://127.0.0.1:8000 (CHROMA_URL)");
  const other = () => new Error("something else went wrong");
  const jobUntil = (usefulUntil: number): Promise<Job> =>
    queue.add("backup", { collection: "c" }, slotJobOptions("backup", usefulUntil, Date.now()));
  const strategy = () => slotBackoffStrategy(60_000, redisUsualFailures(redis));

  it("keeps retrying an outage until the slot's deadline, the delay doubling up to the cap", async () => {
    const job = await jobUntil(Date.now() + 3_600_000);
    const retry = strategy();
    expect(await retry(1, "vk-slot", outage(), job)).toBe(DEFAULTS.jobs.backoffMs);
    expect(await retry(2, "vk-slot", outage(), job)).toBe(2 * DEFAULTS.jobs.backoffMs);
    expect(await retry(40, "vk-slot", outage(), job)).toBe(60_000);
    expect(job.opts.attempts).toBeGreaterThan(3_600_000 / DEFAULTS.jobs.backoffMs);
  });

  it("gives other errors the kind's usual attempts, and stops an outage at the deadline", async () => {
    const job = await jobUntil(Date.now() + 3_600_000);
    const retry = strategy();
    const delays: number[] = [];
    for (let i = 1; i <= DEFAULTS.jobs.attempts; i++) delays.push(await retry(i, "vk-slot", other(), job));
    expect(delays).toEqual([...Array.from({ length: DEFAULTS.jobs.attempts - 1 }, (_, i) => DEFAULTS.jobs.backoffMs * 2 ** i), -1]);
    const late = await jobUntil(Date.now() - 1);
    expect(await retry(1, "vk-slot", outage(), late)).toBe(-1);
  });

  it("keeps the usual retries for failures after an outage, and gives up after them", async () => {
    const job = await jobUntil(Date.now() + 3_600_000);
    const retry = strategy();
    let attemptsMade = 0;
    const next = (error: Error) => retry(++attemptsMade, "vk-slot", error, job);
    // Five outage retries use more attempts than the kind's usual three, and all of them retry.
    for (let i = 0; i < 5; i++) expect(await next(outage())).toBeGreaterThan(0);
    // Then an ordinary failure: retried with the usual first backoff, as many times as usual.
    const delays: number[] = [];
    for (let i = 0; i < DEFAULTS.jobs.attempts; i++) delays.push(await next(other()));
    expect(delays).toEqual([...Array.from({ length: DEFAULTS.jobs.attempts - 1 }, (_, i) => DEFAULTS.jobs.backoffMs * 2 ** i), -1]);
  });

  it("counts only ChromaUnavailableError (also when wrapped) as an outage, not an S3 connection reset", async () => {
    const job = await jobUntil(Date.now() + 3_600_000);
    const retry = strategy();
    const s3Reset = Object.assign(new Error("read ECONNRESET"), { code: "ECONNRESET", name: "TimeoutError" });
    const delays: number[] = [];
    for (let i = 1; i <= DEFAULTS.jobs.attempts; i++) delays.push(await retry(i, "vk-slot", s3Reset, job));
    expect(delays.at(-1)).toBe(-1);
    expect(isChromaOutage(new Error("one line", { cause: outage() }))).toBe(true);
    expect(isChromaOutage(new Error("connect ETIMEDOUT 10.0.0.1:443"))).toBe(false);
  });

  it("leaves kinds that never retry (probe, warm) to their one attempt", () => {
    expect(slotJobOptions("probe", Date.now() + 3_600_000, Date.now())).toBeUndefined();
    expect(slotJobOptions("warm", Date.now() + 3_600_000, Date.now())).toBeUndefined();
  });
});
