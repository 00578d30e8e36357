import { randomUUID } from "node:crypto";
import type { Redis } from "ioredis";
import type { Lease, Locks } from "../jobs/job-context.js";

const RELEASE = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("del", KEYS[1]) else return 0 end`;
const RENEW = `if redis.call("get", KEYS[1]) == ARGV[1] then return redis.call("pexpire", KEYS[1], ARGV[2]) else return 0 end`;

/**
 * Leases in Redis (SET NX PX, renewed while held, released only by their owner), so workers on any machine agree
 * that, say, one backup of a collection runs at a time. A crashed holder's lease simply expires.
 */
export class RedisLocks implements Locks {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  async tryAcquire(name: string, ttlMs: number, holder: string): Promise<Lease> {
    const key = `${this.prefix}:lock:${name}`;
    const token = `${holder}:${randomUUID()}`;
    if ((await this.redis.set(key, token, "PX", ttlMs, "NX")) !== "OK") {
      const current = await this.redis.get(key);
      return { acquired: false, heldBy: current?.split(":")[0] ?? "unknown", release: async () => undefined };
    }
    const renew = setInterval(() => {
      this.redis.eval(RENEW, 1, key, token, String(ttlMs)).catch(() => undefined);
    }, Math.max(1000, ttlMs / 3));
    renew.unref();
    return {
      acquired: true,
      heldBy: holder,
      release: async () => {
        clearInterval(renew);
        await this.redis.eval(RELEASE, 1, key, token);
      },
    };
  }
}

/** Leases within one process, for `vectorkeeper run` when no Redis answers. */
export class LocalLocks implements Locks {
  private readonly held = new Map<string, string>();

  async tryAcquire(name: string, _ttlMs: number, holder: string): Promise<Lease> {
    const current = this.held.get(name);
    if (current) return { acquired: false, heldBy: current, release: async () => undefined };
    this.held.set(name, holder);
    return { acquired: true, heldBy: holder, release: async () => void this.held.delete(name) };
  }
}
