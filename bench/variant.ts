import { mkdirSync, writeFileSync } from "node:fs";
import { Agent, createServer, request } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { DEFAULTS, type PacingOptions } from "../src/config/defaults.js";
import { backup } from "../src/jobs/backup.js";
import { expire } from "../src/jobs/expire.js";
import { recall } from "../src/jobs/recall.js";
import { reindex } from "../src/jobs/reindex.js";
import { restore } from "../src/jobs/restore.js";
import { createLogger } from "../src/logging.js";
import { LocalLocks } from "../src/queues/locks.js";
import { ChromaStore } from "../src/storage/chroma/client.js";
import { RECORD_FIELDS, type RecordField } from "../src/storage/chroma/linear-read.js";
import { Pacer } from "../src/storage/chroma/pacing.js";
import { BatchedWriter } from "../src/storage/chroma/writer.js";
import { FsStore } from "../src/storage/objects/fs-store.js";
import { EncryptedStore } from "../src/storage/backup-format/encrypted-store.js";
import { acceptedBatch, recordBatch } from "./records.js";

/**
 * One measured variant, run in a process of its own so its peak RSS is its own. Prints one JSON line:
 * {records, ms, bytes, peakRssMb} (or {error}).
 */
const [variant = "", url = "", collection = "", ...rest] = process.argv.slice(2);
const store = new ChromaStore({ url, tenant: "default_tenant", database: "default_database" });
const client = store.client;
/** A bench passphrase (not a secret) for the encrypted variants: set by a `"passphrase"` in the options. */
const ctxFor = (dir: string, passphrase?: string) => ({
  logger: createLogger("silent"),
  chroma: store,
  backupStore: passphrase ? new EncryptedStore(new FsStore(dir), Buffer.from(passphrase)) : new FsStore(dir),
  locks: new LocalLocks(),
  runner: "bench",
  ownProcess: true,
  followUp: async () => undefined,
  signal: new AbortController().signal,
  progress: async () => undefined,
});

async function run(): Promise<{
  records: number;
  bytes?: number;
  backupId?: string;
  recall?: unknown;
  pacing?: unknown;
  uploadedBytes?: number;
  reusedChunks?: number;
  chunks?: number;
}> {
  switch (variant) {
    case "raw-read": {
      const c = await store.openCollection(collection);
      let records = 0;
      for (let offset = 0; ; offset += 1000) {
        const page = await c.get({ limit: 1000, offset, include: ["embeddings", "documents", "metadatas"] });
        records += page.ids.length;
        if (page.ids.length < 1000) return { records };
      }
    }
    case "linear-raw-read": {
      // The linear read an operator's script would make: ids listed in windows of 50,000, records fetched by id, 500
      // at a time, one request after another (no read-ahead), with the chromadb client.
      const c = await store.openCollection(collection);
      let records = 0;
      for (let offset = 0; ; offset += 50_000) {
        const { ids } = await c.get({ limit: 50_000, offset, include: [] });
        for (let i = 0; i < ids.length; i += 500) {
          const page = await c.get({ ids: ids.slice(i, i + 500), include: ["embeddings", "documents", "metadatas"] });
          records += page.ids.length;
        }
        if (ids.length < 50_000) return { records };
      }
    }
    case "raw-read-ahead": {
      // The same pages with two more requested while one is received: how fast Chroma can be read at all.
      const c = await store.openCollection(collection);
      const page = (offset: number) => c.get({ limit: 1000, offset, include: ["embeddings", "documents", "metadatas"] });
      const requested = [page(0), page(1000), page(2000)];
      let records = 0;
      for (let offset = 3000; ; offset += 1000) {
        const { ids } = await requested.shift()!;
        records += ids.length;
        if (ids.length < 1000) return { records };
        requested.push(page(offset));
      }
    }
    case "classic": {
      // The recipe operators run today: everything in one get(), then JSON files of 10,000 records.
      const [dir = ""] = rest;
      mkdirSync(dir, { recursive: true });
      const c = await store.openCollection(collection);
      const all = await c.get({ include: ["embeddings", "documents", "metadatas"] });
      let bytes = 0;
      for (let i = 0; i < all.ids.length; i += 10_000) {
        const text = JSON.stringify({
          ids: all.ids.slice(i, i + 10_000),
          embeddings: all.embeddings.slice(i, i + 10_000),
          documents: all.documents.slice(i, i + 10_000),
          metadatas: all.metadatas.slice(i, i + 10_000),
        });
        writeFileSync(join(dir, `chunk_${i / 10_000}.json`), text);
        bytes += Buffer.byteLength(text);
      }
      return { records: all.ids.length, bytes };
    }
    case "backup": {
      // An optional JSON object of payload options, for comparing settings.
      const [dir = "", options = "{}"] = rest;
      const { passphrase, pacingTuning, ...payload } = JSON.parse(options) as { passphrase?: string; pacingTuning?: Partial<PacingOptions> };
      // Adaptive pacing's tuning (DEFAULTS.pacing) for this process only, to compare settings before changing a default.
      if (pacingTuning) Object.assign(DEFAULTS.pacing as PacingOptions, pacingTuning);
      const result = await backup.process(backup.payload.parse({ ...payload, collection }), ctxFor(dir, passphrase));
      const { records, bytes, backupId, pacing, uploadedBytes, reusedChunks, chunks } = result;
      return { records, bytes, backupId, pacing, uploadedBytes, reusedChunks, chunks };
    }
    case "restore": {
      const [dir = "", backupId = "", options = "{}"] = rest;
      const { passphrase, ...payload } = JSON.parse(options) as { passphrase?: string };
      const result = await restore.process(restore.payload.parse({ ...payload, collection, backupId }), ctxFor(dir, passphrase));
      return { records: result.records };
    }
    case "plain-add": {
      // The same records, added to a fresh collection in the largest batches the server accepts: the writing limit.
      const [count = "0", dimension = "0"] = rest;
      const c = await client.createCollection({ name: collection, embeddingFunction: null });
      const batch = await acceptedBatch(client, Number(dimension));
      for (let start = 0; start < Number(count); start += batch) {
        await c.add(recordBatch(start, Math.min(batch, Number(count) - start), Number(dimension)));
      }
      return { records: await c.count() };
    }
    case "recall": {
      // The recall job as `run recall` runs it: sampled queries, exact search streamed over the collection, the index asked.
      const [queries = "100"] = rest;
      const result = await recall.process(recall.payload.parse({ collection, queries: Number(queries) }), ctxFor("/tmp"));
      return { records: await (await store.openCollection(collection)).count(), recall: result };
    }
    case "plain-copy": {
      // A copy into a new collection as a careful script makes it: the linear read (ids listed in windows, records
      // fetched by id, two pages ahead) and Chroma's add in the largest batches a request may carry, one in flight.
      const [target = "", batch] = rest;
      const source = await store.openCollection(collection);
      const copy = await client.createCollection({ name: target, embeddingFunction: null });
      const limits = await store.writeLimits(batch ? Number(batch) : undefined);
      let writer: BatchedWriter | undefined;
      for await (const page of store.readPages(source, { pageSize: 500, readAhead: 2 })) {
        writer ??= new BatchedWriter(copy, { limits, mode: "add" }, page.dimension);
        await writer.add(page);
      }
      await writer?.finish();
      return { records: await copy.count() };
    }
    case "reindex": {
      // A rebuild with the collection's own settings, everything else as `run reindex --rebuild` does it.
      const [options = "{}"] = rest;
      const result = await reindex.process(reindex.payload.parse({ rebuild: true, ...(JSON.parse(options) as object), collection }), ctxFor("/tmp"));
      return { records: result.records, recall: result };
    }
    case "paced-read": {
      // The floor under any backup through Chroma's API: the same linear read, held to a fixed rate (0: none), its pages dropped.
      const [perSecond = "0", pageSize = String(DEFAULTS.backup.pageSize), ahead = "0", fields = RECORD_FIELDS.join("+")] = rest;
      const c = await store.openCollection(collection);
      const pacer = await Pacer.start({ maxRecordsPerSecond: Number(perSecond) || undefined, adaptive: false, latencyFactor: 1 }, undefined, createLogger("silent"));
      let records = 0;
      const include = fields.split("+") as RecordField[];
      for await (const page of store.readPages(c, { pageSize: Number(pageSize), readAhead: Number(ahead), include })) {
        await pacer.take(page.ids.length);
        records += page.ids.length;
      }
      return { records };
    }
    // Loads with nothing to do with Chroma, for the query-interference bench; each runs for `ms` (the collection argument is unused).
    case "cpu-hog": {
      const until = performance.now() + Number(rest[0]);
      while (performance.now() < until) for (let i = 0; i < 1e5; i++);
      return { records: 0 };
    }
    case "memory-stream": {
      const [ms = "0", megabytesPerSecond = "0"] = rest;
      const memory = new Float64Array(32 * 1024 * 1024).fill(1);
      const slice = 55_000;
      const pacer = await Pacer.start({ maxRecordsPerSecond: (Number(megabytesPerSecond) * 1e6) / 8, adaptive: false, latencyFactor: 1 }, undefined, createLogger("silent"));
      let at = 0;
      let sum = 0;
      for (const until = performance.now() + Number(ms); performance.now() < until; at = (at + slice) % memory.length) {
        await pacer.take(slice);
        for (let i = 0; i < slice; i++) sum += memory[(at + i) % memory.length]!;
      }
      // The sum is used, so the reads cannot be optimised away (it is never below 0).
      return { records: Math.min(0, sum) };
    }
    case "loopback": {
      const [ms = "0", bytesPerSecond = "0"] = rest;
      const blob = Buffer.alloc(440_000, 49);
      const server = createServer((req, res) => req.resume().on("end", () => res.end(blob)));
      await new Promise<void>((listening) => server.listen(0, "127.0.0.1", listening));
      const { port } = server.address() as AddressInfo;
      const agent = new Agent({ keepAlive: true });
      const pacer = await Pacer.start({ maxRecordsPerSecond: Number(bytesPerSecond), adaptive: false, latencyFactor: 1 }, undefined, createLogger("silent"));
      for (const until = performance.now() + Number(ms); performance.now() < until; ) {
        await pacer.take(blob.length);
        await new Promise<void>((done) => request({ host: "127.0.0.1", port, method: "POST", agent }, (res) => res.resume().on("end", done)).end("x"));
      }
      agent.destroy();
      server.close();
      return { records: 0 };
    }
    case "expire": {
      const result = await expire.process(expire.payload.parse({ collection }), ctxFor(rest[0] ?? "/tmp"));
      return { records: result.deleted };
    }
    case "plain-delete": {
      const c = await store.openCollection(collection);
      const before = await c.count();
      await c.delete({ where: { _expires_at: { $lt: Date.now() } } });
      return { records: before - (await c.count()) };
    }
    default:
      throw new Error(`unknown variant ${variant}`);
  }
}

const started = performance.now();
try {
  const outcome = await run();
  const ms = performance.now() - started;
  console.log(JSON.stringify({ ...outcome, ms, peakRssMb: process.resourceUsage().maxRSS / 1024 }));
} catch (error) {
  console.log(JSON.stringify({ error: (error instanceof Error ? error.message : String(error)).slice(0, 200), peakRssMb: process.resourceUsage().maxRSS / 1024 }));
}
