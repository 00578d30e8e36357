import { createLogger } from "../src/logging.js";
import { probe } from "../src/jobs/probe.js";
import { createRedisConnection, waitForRedis } from "../src/queues/connection.js";
import { enqueue } from "../src/queues/enqueue.js";
import { QueueSet } from "../src/queues/queue-set.js";
import { LocalLocks } from "../src/queues/locks.js";
import { ChromaStore } from "../src/storage/chroma/client.js";
import { FsStore } from "../src/storage/objects/fs-store.js";
import { measure, printTable, type benchServices } from "./bench-kit.js";

type Services = Awaited<ReturnType<typeof benchServices>>;

/**
 * The probe against the least a health check can do with the raw client (heartbeat, count, one query), and
 * validated enqueue() against a raw Queue.add: the price of vectorkeeper's checks on the hot paths.
 */
export async function benchProbeAndEnqueue(services: Services): Promise<void> {
  const store = new ChromaStore({ url: services.chroma.url, tenant: "default_tenant", database: "default_database" });
  const name = "bench_probe";
  const collection = await store.client.createCollection({ name, embeddingFunction: null });
  const dim = 384;
  const embeddings = Array.from({ length: 2000 }, (_, i) => Array.from({ length: dim }, (_, j) => Math.sin(i * 31 + j)));
  for (let i = 0; i < embeddings.length; i += 500) {
    await collection.add({ ids: embeddings.slice(i, i + 500).map((_, k) => `r${i + k}`), embeddings: embeddings.slice(i, i + 500) });
  }
  const rounds = 100;
  const ctx = {
    logger: createLogger("silent"),
    chroma: store,
    backupStore: new FsStore(services.dir),
    locks: new LocalLocks(),
    runner: "bench",
    followUp: async () => undefined,
    signal: new AbortController().signal,
    progress: async () => undefined,
  };
  const raw = await measure("raw heartbeat+count+query", rounds, "probes", async () => {
    for (let i = 0; i < rounds; i++) {
      await store.client.heartbeat();
      await collection.count();
      await collection.query({ queryEmbeddings: [embeddings[i]!], nResults: 10, include: ["distances"] });
    }
  });
  const job = await measure("vectorkeeper probe job", rounds, "probes", async () => {
    for (let i = 0; i < rounds; i++) await probe.process({ collection: name }, ctx);
  });
  printTable(`probe (${embeddings.length} records x ${dim} dims)`, [raw, job]);

  const redis = createRedisConnection(services.redisUrl, "producer");
  await waitForRedis(redis, services.redisUrl);
  const queues = new QueueSet(redis, services.prefix);
  const jobs = 2000;
  const rawAdd = await measure("raw Queue.add", jobs, "jobs", async () => {
    for (let i = 0; i < jobs; i++) await queues.get("probe").add("probe", { collection: name });
  });
  const typed = await measure("enqueue() with validation", jobs, "jobs", async () => {
    for (let i = 0; i < jobs; i++) await enqueue(queues, "probe", { collection: name });
  });
  printTable("enqueue", [rawAdd, typed]);
  await queues.close();
  redis.disconnect();
}
