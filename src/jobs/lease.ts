import { LeaseBusyError } from "../errors.js";
import { archiveLease, backupLease } from "./backup-fields.js";
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

/** The collection's writer leases a prune holds, or what runs instead. */
export interface WriterLeases {
  /** The writer that holds one of them ("a backup of x (job 7)"): then this prune holds none and must not sweep. */
  busy?: string;
  /** Throws if a lease this prune took was lost meanwhile (checked before anything is deleted). */
  confirm(): Promise<void>;
  release(): Promise<void>;
}

/**
 * Takes the leases of every writer of a collection's packs (its backup, its archive into the object store) but those
 * the caller already holds, for a prune's plan and sweep. A writer reuses packs of manifests it read when it started
 * and writes its own manifest last, so only a sweep no writer overlaps can tell which packs nobody needs. If one is
 * held, the prune takes none and reports the holder. With `look` only (a dry run) nothing is taken, so no backup has
 * to stand down for a prune that deletes nothing.
 */
export async function holdWriterLeases(ctx: JobContext, collection: string, options: { held?: string; look?: boolean } = {}): Promise<WriterLeases> {
  const writers: [string, string][] = [
    [backupLease(collection), `a backup of ${collection}`],
    [archiveLease(collection), `an archive of ${collection}`],
  ];
  const taken: Lease[] = [];
  const release = async () => {
    for (const lease of taken) await lease.release();
  };
  for (const [name, what] of writers) {
    if (name === options.held) continue;
    let holder: string | undefined;
    if (options.look) {
      holder = await ctx.locks.holder(name);
    } else {
      const lease = await ctx.locks.tryAcquire(name, ctx.runner);
      if (lease.acquired) taken.push(lease);
      else holder = lease.heldBy;
    }
    if (holder !== undefined) {
      await release();
      return { busy: `${what} (${holder})`, confirm: async () => undefined, release: async () => undefined };
    }
  }
  return {
    confirm: async () => {
      for (const lease of taken) await lease.confirm();
    },
    release,
  };
}
