import type { MinimalJob } from "bullmq";
import { describe, expect, it } from "vitest";
import { DEFAULTS } from "../src/config/defaults.js";
import { slotBackoffStrategy, slotJobOptions } from "../src/queues/slot-retry.js";
import { ChromaUnavailableError } from "../src/storage/chroma.js";

/** The retry decision of scheduled jobs, as BullMQ's worker calls it (a pure function of attempt, error, job and now). */
describe("retries of a scheduled job", () => {
  const outage = new ChromaUnavailableError("Chroma does not answer at http://127.0.0.1:8000 (CHROMA_URL)");
  const other = new Error("something else went wrong");
  const jobUntil = (usefulUntil: number) => ({ queueName: "backup", opts: slotJobOptions("backup", usefulUntil, Date.now()) }) as unknown as MinimalJob;
  const strategy = slotBackoffStrategy(60_000);

  it("keeps retrying an outage until the slot's deadline, the delay doubling up to the cap", () => {
    const job = jobUntil(Date.now() + 3_600_000);
    expect(strategy(1, "vk-slot", outage, job)).toBe(DEFAULTS.jobs.backoffMs);
    expect(strategy(2, "vk-slot", outage, job)).toBe(2 * DEFAULTS.jobs.backoffMs);
    expect(strategy(40, "vk-slot", outage, job)).toBe(60_000);
    expect(job.opts.attempts).toBeGreaterThan(3_600_000 / DEFAULTS.jobs.backoffMs);
  });

  it("gives other errors the kind's usual attempts, and stops an outage at the deadline", () => {
    const job = jobUntil(Date.now() + 3_600_000);
    expect(strategy(1, "vk-slot", other, job)).toBe(DEFAULTS.jobs.backoffMs);
    expect(strategy(DEFAULTS.jobs.attempts, "vk-slot", other, job)).toBe(-1);
    const late = jobUntil(Date.now() - 1);
    expect(strategy(DEFAULTS.jobs.attempts, "vk-slot", outage, late)).toBe(-1);
  });

  it("leaves kinds that never retry (probe, warm) to their one attempt", () => {
    expect(slotJobOptions("probe", Date.now() + 3_600_000, Date.now())).toBeUndefined();
    expect(slotJobOptions("warm", Date.now() + 3_600_000, Date.now())).toBeUndefined();
  });
});
