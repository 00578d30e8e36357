import { performance } from "node:perf_hooks";
import { z } from "zod";
import { DEFAULTS } from "../config/defaults.js";
import { defineJob } from "./job-context.js";
import { alertAfterFailures, collectionName } from "./payload-fields.js";

export const probePayload = z
  .object({
    collection: collectionName,
    alertAfterFailures,
    /** A query slower than this fails the probe-latency check (else VK_ALERT_PROBE_LATENCY_MS). */
    latencyThresholdMs: z.number().positive().optional(),
  })
  .strict();

export interface ProbeResult {
  collection: string;
  /** Healthy: the server answered and the query (if there was anything to query) succeeded. */
  ok: true;
  checkedAt: string;
  heartbeatMs: number;
  count: number;
  /** The collection's embedding dimension, read from a stored record; null while it is empty. */
  dimension: number | null;
  /** Latency of one nearest-neighbour query with a stored embedding; null while the collection is empty. */
  queryMs: number | null;
  durationMs: number;
}

const round = (ms: number) => Math.round(ms * 1000) / 1000;

/**
 * Heartbeat, count and a real query. No server version: Chroma's /api/v2/version answers "1.0.0" on every release
 * (1.0.5 through 1.4.4), so reporting it would be a figure the server does not really give. The query uses an embedding stored in the collection, so it always has
 * the collection's own dimension (a hard-coded 384 breaks on any other model) and exercises the real index.
 */
export const probe = defineJob({
  kind: "probe",
  payload: probePayload,
  async process({ collection: name }, { chroma, logger }): Promise<ProbeResult> {
    const started = performance.now();
    const beat = performance.now();
    await chroma.heartbeat();
    const heartbeatMs = performance.now() - beat;
    const collection = await chroma.openCollection(name);
    const count = await collection.count();

    let dimension: number | null = null;
    let queryMs: number | null = null;
    if (count > 0) {
      const embedding = await chroma.sampleEmbedding(collection, Math.floor(Math.random() * Math.min(count, DEFAULTS.checks.probeSampleWindow)));
      if (embedding) {
        dimension = embedding.length;
        const queried = performance.now();
        await collection.query({ queryEmbeddings: [embedding], nResults: Math.min(10, count), include: ["distances"] });
        queryMs = performance.now() - queried;
      }
    }
    const result: ProbeResult = {
      collection: name,
      ok: true,
      checkedAt: new Date().toISOString(),
      heartbeatMs: round(heartbeatMs),
      count,
      dimension,
      queryMs: queryMs === null ? null : round(queryMs),
      durationMs: round(performance.now() - started),
    };
    logger.debug({ probe: result }, "probe done");
    return result;
  },
});
