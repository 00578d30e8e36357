import { LeaseBusyError } from "../errors.js";
import type { JobContext, Lease } from "./job-context.js";

/** A lease this run holds, with the signal its work should follow: the job's own, or the lease's loss. */
export type HeldLease = Lease & { signal: AbortSignal };

/**
 * Watches a lease this run holds: its takeover of a crashed run's lease and its loss are logged, and the returned
 * signal aborts on the job's own signal or on the loss, whichever comes first.
 */
export function watchLease(ctx: JobContext, name: string, lease: Lease): HeldLease {
  if (lease.tookOver) ctx.logger.warn({ lease: name, from: lease.tookOver.from, reason: lease.tookOver.reason }, "took over the lease of a crashed run");
  lease.lost.addEventListener("abort", () => ctx.logger.error({ lease: name, reason: String(lease.lost.reason) }, "lease lost; this run stops"), { once: true });
  return Object.assign(lease, { signal: AbortSignal.any([ctx.signal, lease.lost]) });
}

/**
 * Takes the named lease for this run or throws LeaseBusyError (`what` names the other run: "a drill of x"), which the
 * queue retries later rather than failing for good.
 */
export async function holdLease(ctx: JobContext, name: string, what: string): Promise<HeldLease> {
  const lease = await ctx.locks.tryAcquire(name, ctx.runner);
  if (!lease.acquired) throw new LeaseBusyError(`${what} is already running (${lease.heldBy})`);
  return watchLease(ctx, name, lease);
}
