import type { Redis } from "ioredis";

/**
 * One check on one subject (`probe` on `products_v1`) moves between ok and firing. Its state lives in Redis and
 * changes in one Lua script, so any number of workers agree, each observation counts once, and a restart neither
 * forgets a firing alert nor fires it again. Each state expires when not observed for `ttlMs`, and is indexed in one
 * set so the states of a collection that no longer exists can be found and removed without scanning the keyspace.
 */
const OBSERVE = `
redis.call('SADD', KEYS[2], ARGV[4])
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local firing = redis.call('HGET', KEYS[1], 'firing') == '1'
local result = false
if ARGV[1] == 'fail' then
  failures = failures + 1
  redis.call('HSET', KEYS[1], 'failures', failures)
  if failures >= tonumber(ARGV[2]) and not firing then
    redis.call('HSET', KEYS[1], 'firing', '1')
    result = 'fire'
  end
else
  redis.call('HSET', KEYS[1], 'failures', 0)
  if firing then
    redis.call('HSET', KEYS[1], 'firing', '0')
    result = 'recover'
  end
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return result
`;

export type Transition = "fire" | "recover" | undefined;

export class AlertState {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly ttlMs: number,
  ) {}

  private keyOf(check: string, subject: string): string {
    return `${this.prefix}:alert:${check}:${subject}`;
  }

  private get indexKey(): string {
    return `${this.prefix}:alert-index`;
  }

  /** Records one observation; says whether it made the alert fire or recover. */
  async observe(check: string, subject: string, ok: boolean, threshold: number): Promise<Transition> {
    const member = JSON.stringify([check, subject]);
    const reply = (await this.redis.eval(
      OBSERVE,
      2,
      this.keyOf(check, subject),
      this.indexKey,
      ok ? "ok" : "fail",
      String(threshold),
      String(this.ttlMs),
      member,
    )) as string | null;
    return reply === "fire" || reply === "recover" ? reply : undefined;
  }

  /** Consecutive failures recorded for a check on a subject; undefined when it has no state. */
  async failures(check: string, subject: string): Promise<number | undefined> {
    const value = await this.redis.hget(this.keyOf(check, subject), "failures");
    return value === null ? undefined : Number(value);
  }

  /** Every (check, subject) with state, expired ones included until the next `forget`. */
  async subjects(): Promise<{ check: string; subject: string }[]> {
    const members = await this.redis.smembers(this.indexKey);
    return members.flatMap((member) => {
      try {
        const [check, subject] = JSON.parse(member) as [unknown, unknown];
        return typeof check === "string" && typeof subject === "string" ? [{ check, subject }] : [];
      } catch {
        return [];
      }
    });
  }

  /** Removes the state of every check on these subjects, and index entries whose state has expired. */
  async forget(subjects: ReadonlySet<string>): Promise<number> {
    let removed = 0;
    for (const { check, subject } of await this.subjects()) {
      const key = this.keyOf(check, subject);
      if (subjects.has(subject)) {
        await this.redis.del(key);
        removed++;
      } else if ((await this.redis.exists(key)) === 1) {
        continue;
      }
      await this.redis.srem(this.indexKey, JSON.stringify([check, subject]));
    }
    return removed;
  }
}
