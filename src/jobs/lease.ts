import { LeaseBusyError } from "../errors.js";
import type { JobContext, Lease } from "./job-context.js";

/**
 * Takes the named lease for this run or throws LeaseBusyError (`what` names the other run: "a drill of x"), which the
 * queue retries later rather than failing for good. Taking over a crashed run's lease is logged.
 */
export async function holdLease(ctx: JobContext, name: string, what: string): Promise<Lease> {
  const lease = await ctx.locks.tryAcquire(name, ctx.runner);
  if (!lease.acquired) throw new LeaseBusyError(`${what} is already running (${lease.heldBy})`);
  if (lease.tookOver) ctx.logger.warn({ lease: name, from: lease.tookOver.from, reason: lease.tookOver.reason }, "took over the lease of a crashed run");
  return lease;
}
