import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { AlertState } from "../src/alerts/alert-state.js";
import { GoneCollections } from "../src/ops/forget-gone.js";
import { LastSuccessStore } from "../src/ops/last-success.js";
import { Metrics } from "../src/ops/metrics.js";
import { createRedisConnection, waitForRedis } from "../src/queues/connection.js";
import { QueueSet } from "../src/queues/queue-set.js";
import { NamedCollections } from "../src/scheduling/named-collections.js";
import { startHttpFaultProxy, type HttpFaultProxy } from "./helpers/fault-proxy.js";
import { chromaStore, chromaUrl, seedCollection, uniqueName, uniquePrefix } from "./helpers/services.js";

/** A listing that misses a live collection once (here: the proxy answers one listing with an empty page). */
describe("forgetting gone collections", () => {
  const redis = createRedisConnection(inject("redisUrl"), "producer");
  const prefix = uniquePrefix("forget");
  const queues = new QueueSet(redis, prefix);
  let proxy: HttpFaultProxy;
  beforeAll(async () => {
    await waitForRedis(redis, inject("redisUrl"));
    proxy = await startHttpFaultProxy(chromaUrl());
  });
  afterAll(async () => {
    await proxy.close();
    await queues.close();
    redis.disconnect();
  });

  it("forgets a collection only when two listings in a row miss it", async () => {
    const live = uniqueName("forget_live");
    const gone = uniqueName("forget_gone");
    await seedCollection(chromaStore(), live, 3, 4);
    const lastSuccess = new LastSuccessStore(redis, prefix);
    await lastSuccess.record("backup", live);
    await lastSuccess.record("backup", gone);
    const forgetter = new GoneCollections({
      chroma: chromaStore(proxy.url),
      metrics: new Metrics(queues, lastSuccess),
      alertState: new AlertState(redis, prefix, 60_000),
      lastSuccess,
      named: new NamedCollections(redis, prefix),
    });
    const remembered = async () => (await lastSuccess.all()).map((s) => s.collection).sort();

    proxy.inject({ method: "GET", path: /\/collections(\?|$)/, times: 1, fault: { kind: "status", status: 200, body: "[]", contentType: "application/json" } });
    expect(await forgetter.forget()).toEqual([]);
    expect(await remembered()).toEqual([gone, live].sort());
    expect(proxy.requests.some((r) => r.fault === "status")).toBe(true);

    expect(await forgetter.forget()).toEqual([gone]);
    expect(await remembered()).toEqual([live]);
  });
});
