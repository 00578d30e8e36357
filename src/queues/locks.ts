import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Redis } from "ioredis";
import { z } from "zod";
import { DEFAULTS } from "../config/defaults.js";
import type { Lease, Locks } from "../jobs/job-context.js";

const RELEASE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;
const RENEW = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;
/** Replaces a lease only if it still holds the value that was judged stale or ours, so two takers cannot both win. */
const REPLACE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("set", KEYS[1], ARGV[2], "PX", ARGV[3]) else return false end`;

/** The holder name of an inline (CLI) run: its pid and host, so a lease left by a killed run can be recognised. */
export function cliHolder(pid: number = process.pid, host: string = hostname()): string {
  return `cli ${pid}@${host}`;
}

/** True when the holder is a CLI run on this host whose process no longer exists (restic breaks such locks at once). */
export function isDeadLocalHolder(holder: string): boolean {
  const match = /^cli (\d+)@(.+)$/.exec(holder);
  if (!match || match[2] !== hostname()) return false;
  try {
    process.kill(Number(match[1]), 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}

function lostLease(name: string, holder: string | null): Error {
  return new Error(
    holder === null
      ? `lease ${name} lapsed (Redis did not renew it in time, and another run may have held it since); this run stops`
      : `lease ${name} was taken over by ${holder} (a retry of this job judged this run dead); this run stops`,
  );
}

/** The `lost` signal of a lease that was never held, or that only this process can take (never aborted). */
const neverLost = (): AbortSignal => new AbortController().signal;

const notHeld = (name: string) => async () => {
  throw new Error(`lease ${name} is not held`);
};

const storedLease = z.object({ holder: z.string(), token: z.string() });

/** The holder named by a stored lease value; values of older versions were `holder:uuid`. */
function holderOf(raw: string): string {
  try {
    return storedLease.parse(JSON.parse(raw)).holder;
  } catch {
    return raw.split(":")[0] ?? "unknown";
  }
}

/** Why a lease held by `current` may be taken by `holder`, or undefined when it may not. */
function takeoverReason(current: string, holder: string): "own" | "dead" | undefined {
  if (current === holder) return "own";
  if (isDeadLocalHolder(current)) return "dead";
  return undefined;
}

/**
 * Leases in Redis (SET NX PX, renewed while held, released only by their owner), so workers on any machine agree
 * that, say, one backup of a collection runs at a time. Each lease names its holder: a retry of the same job takes
 * over its own job's lease (the crashed attempt cannot release it), and a lease of a dead CLI process on this host is
 * broken at once. Any other crashed holder's lease lapses `ttlMs` after its last renewal; workers use the same
 * lifetime for BullMQ's job lock, so a stalled job is handed on no sooner than its lease lapses.
 */
export class RedisLocks implements Locks {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    readonly ttlMs: number,
  ) {}

  private key(name: string): string {
    return `${this.prefix}:lock:${name}`;
  }

  async tryAcquire(name: string, holder: string): Promise<Lease> {
    const key = this.key(name);
    const token = JSON.stringify({ holder, token: randomUUID() });
    let acquired = (await this.redis.set(key, token, "PX", this.ttlMs, "NX")) === "OK";
    let tookOver: Lease["tookOver"];
    if (!acquired) {
      const current = await this.redis.get(key);
      const reason = current === null ? undefined : takeoverReason(holderOf(current), holder);
      if (current === null) {
        acquired = (await this.redis.set(key, token, "PX", this.ttlMs, "NX")) === "OK";
      } else if (reason) {
        acquired = (await this.redis.eval(REPLACE, 1, key, current, token, String(this.ttlMs))) !== null;
        if (acquired) tookOver = { from: holderOf(current), reason };
      }
      if (!acquired) {
        const now = await this.redis.get(key);
        return { acquired: false, heldBy: now === null ? "unknown" : holderOf(now), confirm: notHeld(name), lost: neverLost(), release: async () => undefined };
      }
    }
    const lost = new AbortController();
    let released = false;
    const renew = setInterval(() => {
      this.redis
        .eval(RENEW, 1, key, token, String(this.ttlMs))
        .then(async (renewed) => {
          if (renewed !== 0 || lost.signal.aborted || released) return;
          clearInterval(renew);
          const current = await this.redis.get(key).catch(() => null);
          lost.abort(lostLease(name, current === null ? null : holderOf(current)));
        })
        // Redis out of reach: the lease may still be ours; the next renewal (or confirm) tells.
        .catch(() => undefined);
    }, Math.max(500, this.ttlMs / 3));
    renew.unref();
    return {
      acquired: true,
      heldBy: holder,
      ...(tookOver ? { tookOver } : {}),
      lost: lost.signal,
      confirm: async () => {
        const current = await this.redis.get(key);
        // A lapsed lease is lost too: a stalled run's retry may have run to the end and released it meanwhile.
        if (current !== token) throw lostLease(name, current === null ? null : holderOf(current));
      },
      release: async () => {
        released = true;
        clearInterval(renew);
        await this.redis.eval(RELEASE, 1, key, token);
      },
    };
  }

  async holder(name: string): Promise<string | undefined> {
    const current = await this.redis.get(this.key(name));
    if (current === null) return undefined;
    const holder = holderOf(current);
    return isDeadLocalHolder(holder) ? undefined : holder;
  }
}

/** Leases within one process, for `vectorkeeper run` when no Redis answers. */
export class LocalLocks implements Locks {
  private readonly held = new Map<string, { holder: string; token: symbol }>();

  constructor(readonly ttlMs: number = DEFAULTS.worker.leaseTtlMs) {}

  async tryAcquire(name: string, holder: string): Promise<Lease> {
    const current = this.held.get(name);
    const reason = current ? takeoverReason(current.holder, holder) : undefined;
    if (current && !reason) return { acquired: false, heldBy: current.holder, confirm: notHeld(name), lost: neverLost(), release: async () => undefined };
    const token = Symbol(holder);
    this.held.set(name, { holder, token });
    return {
      acquired: true,
      heldBy: holder,
      ...(current && reason ? { tookOver: { from: current.holder, reason } } : {}),
      lost: neverLost(),
      confirm: async () => {
        const now = this.held.get(name);
        if (now?.token !== token) throw lostLease(name, now?.holder ?? "unknown");
      },
      release: async () => {
        if (this.held.get(name)?.token === token) this.held.delete(name);
      },
    };
  }

  async holder(name: string): Promise<string | undefined> {
    const holder = this.held.get(name)?.holder;
    return holder === undefined || isDeadLocalHolder(holder) ? undefined : holder;
  }
}
