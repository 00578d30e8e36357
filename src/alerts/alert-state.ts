import type { Redis } from "ioredis";

/**
 * One check on one subject (`probe` on `products_v1`) moves between ok and firing. Its state lives in Redis and
 * changes in one Lua script, so any number of workers agree, each observation counts once, and a restart neither
 * forgets a firing alert nor fires it again.
 */
const OBSERVE = `
local failures = tonumber(redis.call('HGET', KEYS[1], 'failures') or '0')
local firing = redis.call('HGET', KEYS[1], 'firing') == '1'
if ARGV[1] == 'fail' then
  failures = failures + 1
  redis.call('HSET', KEYS[1], 'failures', failures)
  if failures >= tonumber(ARGV[2]) and not firing then
    redis.call('HSET', KEYS[1], 'firing', '1')
    return 'fire'
  end
  return false
end
redis.call('HSET', KEYS[1], 'failures', 0)
if firing then
  redis.call('HSET', KEYS[1], 'firing', '0')
  return 'recover'
end
return false
`;

export type Transition = "fire" | "recover" | undefined;

export class AlertState {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
  ) {}

  /** Records one observation; says whether it made the alert fire or recover. */
  async observe(check: string, subject: string, ok: boolean, threshold: number): Promise<Transition> {
    const key = `${this.prefix}:alert:${check}:${subject}`;
    const reply = (await this.redis.eval(OBSERVE, 1, key, ok ? "ok" : "fail", String(threshold))) as string | null;
    return reply === "fire" || reply === "recover" ? reply : undefined;
  }
}
