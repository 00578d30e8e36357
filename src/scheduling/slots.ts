import { CronExpressionParser } from "cron-parser";
import cron from "node-cron";

/**
 * Slot arithmetic. node-cron drives the ticks; cron-parser names the slots (the latest scheduled time at or before a
 * moment), so every scheduler replica derives the same slot, and so the same job id, from any tick or catch-up.
 */

/** Problems with a cron expression in words a user can act on, or undefined when it is valid. */
export function cronProblem(expression: string, timezone: string): string | undefined {
  const fields = expression.trim().split(/\s+/).length;
  if (fields !== 5 && fields !== 6) {
    return `has ${fields} fields; use 5 (minute hour day-of-month month day-of-week) or 6 (with seconds first), e.g. "*/15 * * * *"`;
  }
  const detailed = cron.validateDetailed(expression);
  if (!detailed.valid) {
    return detailed.errors.map((e) => `${e.field}: ${e.message}`).join(", ") || "is not a valid cron expression";
  }
  try {
    CronExpressionParser.parse(expression, { tz: timezone });
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
  return undefined;
}

/** The latest slot at or before `at`. A tick that fires a few ms early or late still names its own slot. */
export function slotAtOrBefore(expression: string, timezone: string, at: Date): Date {
  const parsed = CronExpressionParser.parse(expression, { tz: timezone, currentDate: new Date(at.getTime() + 1) });
  return parsed.prev().toDate();
}

/** The next `count` slots after `from`. */
export function nextSlots(expression: string, timezone: string, from: Date, count: number): Date[] {
  const parsed = CronExpressionParser.parse(expression, { tz: timezone, currentDate: from });
  return Array.from({ length: count }, () => parsed.next().toDate());
}

/**
 * The job id of one (kind, collection, slot). BullMQ ignores an add whose id exists, so replicas that race on a tick
 * add one job. Kind has no dots and the slot is digits, so the id is unambiguous whatever the collection name.
 */
export function slotJobId(kind: string, collection: string, slot: Date): string {
  return `sched.${kind}.${collection}.${slot.getTime()}`;
}
