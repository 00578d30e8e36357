import type { Redis } from "ioredis";
import { redactUrlsIn } from "../redact.js";
import type { ChromaStore } from "../storage/chroma/client.js";

export interface CheckResult {
  ok: boolean;
  ms: number;
  /** Why it failed, in one line. */
  error?: string;
}

export interface Readiness {
  ready: boolean;
  checks: { redis: CheckResult; chroma?: CheckResult };
}

async function timed(check: () => Promise<unknown>, timeoutMs: number): Promise<CheckResult> {
  const started = performance.now();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      check(),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
      }),
    ]);
    return { ok: true, ms: Math.round(performance.now() - started) };
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    return { ok: false, ms: Math.round(performance.now() - started), error: redactUrlsIn(message.split("\n")[0] ?? "") };
  } finally {
    clearTimeout(timer);
  }
}

/** Redis and Chroma both answer: what `/readyz` and `status` report. */
export async function checkReadiness(redis: Redis, chroma: ChromaStore, timeoutMs: number): Promise<Readiness & { checks: { chroma: CheckResult } }>;
/** Redis answers, and Chroma too when given (the scheduler's readiness leaves Chroma out: it enqueues through outages). */
export async function checkReadiness(redis: Redis, chroma: ChromaStore | undefined, timeoutMs: number): Promise<Readiness>;
export async function checkReadiness(redis: Redis, chroma: ChromaStore | undefined, timeoutMs: number): Promise<Readiness> {
  const [redisCheck, chromaCheck] = await Promise.all([
    timed(() => redis.ping(), timeoutMs),
    chroma ? chromaAnswers(chroma, timeoutMs) : undefined,
  ]);
  if (!redisCheck.ok) redisCheck.error = `Redis: ${redisCheck.error}`;
  return {
    ready: redisCheck.ok && (chromaCheck?.ok ?? true),
    checks: chromaCheck ? { redis: redisCheck, chroma: chromaCheck } : { redis: redisCheck },
  };
}

/** Whether Chroma's heartbeat answers within the limit: the scheduler's server-level check. */
export async function chromaAnswers(chroma: ChromaStore, timeoutMs: number): Promise<CheckResult> {
  const check = await timed(() => chroma.heartbeat(), timeoutMs);
  if (!check.ok) check.error = `Chroma at ${chroma.where}: ${check.error}`;
  return check;
}
