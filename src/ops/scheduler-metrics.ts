import { Counter, Gauge, Registry } from "prom-client";
import { SERVED_KINDS, type ServedKind } from "../queues/catalogue.js";
import { registerProcessMetrics } from "./process-metrics.js";

/**
 * What the scheduler exports: jobs enqueued from slots, slots it could not enqueue, each entry's next slot, and
 * whether Chroma answered its last server-level check. Registered on its own registry, or on the worker's when both
 * run in one process (`start`).
 */
export class SchedulerMetrics {
  readonly registry: Registry;
  private readonly slots: Counter<"kind">;
  private readonly enqueued: Counter<"kind">;
  private readonly failed: Counter<"kind">;
  private readonly nextSlot: Gauge<"entry" | "kind">;
  /** Made at the first check: a gauge without labels would read 0 before it, and VectorkeeperChromaDown fire. */
  private chromaUp: Gauge | undefined;

  constructor(registry?: Registry) {
    this.registry = registry ?? new Registry();
    if (!registry) registerProcessMetrics(this.registry);
    const registers = [this.registry];
    this.slots = new Counter({
      name: "vectorkeeper_scheduler_slots_enqueued_total",
      help: "Schedule slots for which this scheduler enqueued jobs (one per matching collection), by kind",
      labelNames: ["kind"] as const,
      registers,
    });
    this.enqueued = new Counter({
      name: "vectorkeeper_scheduler_jobs_enqueued_total",
      help: "Jobs this scheduler enqueued from schedule slots (one per collection and slot), by kind",
      labelNames: ["kind"] as const,
      registers,
    });
    this.failed = new Counter({
      name: "vectorkeeper_scheduler_slots_failed_total",
      help: "Attempts to enqueue a schedule slot that failed (Redis unreachable); the slot is retried within the catch-up window",
      labelNames: ["kind"] as const,
      registers,
    });
    this.nextSlot = new Gauge({
      name: "vectorkeeper_scheduler_next_slot_timestamp_seconds",
      help: "The next slot of each schedule entry (entry is its index in the schedule file), Unix time",
      labelNames: ["entry", "kind"] as const,
      registers,
    });
    for (const kind of SERVED_KINDS) {
      this.slots.inc({ kind }, 0);
      this.enqueued.inc({ kind }, 0);
      this.failed.inc({ kind }, 0);
    }
  }

  /** A pass over a slot that added jobs; passes that find every job already claimed count nothing. */
  slotEnqueued(kind: ServedKind, jobs: number): void {
    if (jobs === 0) return;
    this.slots.inc({ kind });
    this.enqueued.inc({ kind }, jobs);
  }

  slotFailed(kind: ServedKind): void {
    this.failed.inc({ kind });
  }

  nextSlotOf(entry: number, kind: ServedKind, at: Date): void {
    this.nextSlot.set({ entry: String(entry), kind }, at.getTime() / 1000);
  }

  chroma(up: boolean): void {
    this.chromaUp ??= new Gauge({
      name: "vectorkeeper_chroma_up",
      help: "1 when Chroma answered the scheduler's server-level check at the last probe tick, 0 when it did not (absent before the first check)",
      registers: [this.registry],
    });
    this.chromaUp.set(up ? 1 : 0);
  }
}
