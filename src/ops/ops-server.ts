import { createHash, timingSafeEqual } from "node:crypto";
import { createBullBoard } from "@bull-board/api";
import { BullMQAdapter } from "@bull-board/api/bullMQAdapter";
import { FastifyAdapter } from "@bull-board/fastify";
import fastifyBasicAuth from "@fastify/basic-auth";
import Fastify, { LogController } from "fastify";
import type { Redis } from "ioredis";
import { ConfigError } from "../config/config-error.js";
import { DEFAULTS } from "../config/defaults.js";
import type { Logger } from "../logging.js";
import type { QueueSet } from "../queues/queue-set.js";
import type { ChromaStore } from "../storage/chroma/client.js";
import type { Registry } from "prom-client";
import { checkReadiness } from "./readiness.js";

export const DASHBOARD_PATH = "/dashboard";

export interface OpsServerDeps {
  http: { port: number; host: string };
  dashboard: { user: string; password: string } | undefined;
  redis: Redis;
  /** Part of readiness when given: a worker cannot work without Chroma; a scheduler enqueues anyway. */
  chroma?: ChromaStore;
  /** The queues the dashboard shows; without them (the scheduler) no dashboard is served. */
  queues?: QueueSet;
  metrics: { registry: Registry };
  logger: Logger;
}

export interface OpsServer {
  /** The base URL it listens on, e.g. http://127.0.0.1:9464. */
  url: string;
  close(): Promise<void>;
}

/**
 * Compares SHA-256 digests, which always have the same length: comparing the raw strings needs an equal-length check
 * first, and that early exit tells an attacker the secret's length.
 */
export const sameSecret = (given: string, expected: string): boolean =>
  timingSafeEqual(createHash("sha256").update(given).digest(), createHash("sha256").update(expected).digest());

/**
 * bull-board's page asks Google Fonts for its typeface: a request to the internet from every operator's browser (and a
 * wait where there is no internet). The page falls back to the system's sans-serif, so the link is taken out.
 */
function withoutWebFonts(contentType: unknown, payload: unknown): unknown {
  if (typeof payload !== "string" || !String(contentType).startsWith("text/html")) return payload;
  return payload.replace(/<link\b[^>]*fonts\.(googleapis|gstatic)\.com[^>]*>/g, "");
}

/**
 * /livez, /readyz, /metrics and the bull-board dashboard. bull-board leaves auth to its host, so the dashboard is
 * served only behind HTTP basic auth, and not at all without credentials.
 */
export async function startOpsServer(deps: OpsServerDeps): Promise<OpsServer> {
  const { logger } = deps;
  const app = Fastify({
    loggerInstance: logger.child({ component: "ops-http" }),
    // Probes and scrapes hit these routes every few seconds; a log line each would drown the job events.
    logController: new LogController({ disableRequestLogging: true }),
  });

  app.get("/livez", async () => ({ ok: true }));

  app.get("/readyz", async (_request, reply) => {
    const readiness = await checkReadiness(deps.redis, deps.chroma, DEFAULTS.checks.timeoutMs);
    const reasons = Object.values(readiness.checks).flatMap((c) => (c.error ? [c.error] : []));
    return reply.code(readiness.ready ? 200 : 503).send({ ...readiness, reason: reasons.join("; ") || undefined });
  });

  app.get("/metrics", async (_request, reply) => {
    const text = await deps.metrics.registry.metrics();
    return reply.type(deps.metrics.registry.contentType).send(text);
  });

  const queues = deps.queues;
  if (deps.dashboard && queues) {
    const { user, password } = deps.dashboard;
    await app.register(async (scope) => {
      await scope.register(fastifyBasicAuth, {
        authenticate: { realm: "vectorkeeper" },
        async validate(givenUser, givenPassword) {
          // Compare both halves always, so timing does not tell which one was wrong.
          const userOk = sameSecret(givenUser, user);
          const passwordOk = sameSecret(givenPassword, password);
          if (!(userOk && passwordOk)) return new Error("invalid dashboard credentials");
        },
      });
      scope.addHook("onRequest", scope.basicAuth);
      scope.addHook("onSend", async (_request, reply, payload) => withoutWebFonts(reply.getHeader("content-type"), payload));
      const serverAdapter = new FastifyAdapter();
      serverAdapter.setBasePath(DASHBOARD_PATH);
      createBullBoard({
        queues: queues.all().map((queue) => new BullMQAdapter(queue)),
        serverAdapter,
        options: { uiConfig: { boardTitle: "vectorkeeper" } },
      });
      await scope.register(serverAdapter.registerPlugin(), { prefix: DASHBOARD_PATH });
    });
  } else if (queues) {
    logger.warn("dashboard not served: set DASHBOARD_USER and DASHBOARD_PASSWORD to enable it (it has no auth of its own)");
  }

  let address: string;
  try {
    address = await app.listen({ port: deps.http.port, host: deps.http.host });
  } catch (error) {
    await app.close();
    if ((error as NodeJS.ErrnoException).code === "EADDRINUSE") {
      // A worker and a scheduler on one host both default to 9464.
      throw new ConfigError(
        `HTTP_PORT: ${deps.http.port} is already in use on ${deps.http.host} (another vectorkeeper daemon?); give each daemon its own HTTP_PORT, e.g. 9465 for the scheduler`,
      );
    }
    throw error;
  }
  const url = new URL(address);
  if (url.hostname === "0.0.0.0" || url.hostname === "[::]") url.hostname = "127.0.0.1";
  const base = url.toString().replace(/\/$/, "");
  logger.info({ url: base, dashboard: deps.dashboard && queues ? `${base}${DASHBOARD_PATH}` : null }, "ops server listening");
  return { url: base, close: () => app.close() };
}
