import { createHash } from "node:crypto";
import { cpSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { FtsIndexConfig, IntInvertedIndexConfig, Schema, StringInvertedIndexConfig, type Metadata } from "chromadb";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { backup } from "../src/jobs/backup.js";
import { drill } from "../src/jobs/drill.js";
import { restore } from "../src/jobs/restore.js";
import { readManifest } from "../src/storage/backup-format/backup-catalog.js";
import { ChromaStore } from "../src/storage/chroma/client.js";
import { FsStore } from "../src/storage/objects/fs-store.js";
import { startLocalChroma } from "../src/storage/chroma/local-server.js";
import { expectSameRows, snapshotOf } from "./helpers/backup-fixtures.js";
import { runCli } from "./helpers/cli.js";
import { startHttpFaultProxy, type HttpFaultProxy } from "./helpers/fault-proxy.js";
import { readBackup, type ReadRecord } from "./helpers/independent-reader.js";
import { chromaStore, chromaUrl, jobContext, seedCollection, testEnv, uniqueName, vectors } from "./helpers/services.js";
import { tempDir } from "./helpers/temp-dir.js";

const chroma = chromaStore();
/** The run's server: "current" has schemas and array metadata, 1.0.5 has neither (both keep URIs). */
const current = inject("chromaServer") === "current";
const FIXTURES = new URL("./fixtures/", import.meta.url);

/** A fresh file:// store, optionally holding a copy of a checked-in backup fixture. */
function freshStore(fixture?: string): { root: string; store: FsStore; env: Record<string, string> } {
  const root = tempDir("fidelity");
  if (fixture) cpSync(new URL(fixture, FIXTURES), root, { recursive: true });
  return { root, store: new FsStore(root), env: testEnv({ BACKUP_URL: `file://${root}` }) };
}

/** A collection exactly as the server describes it over the v2 REST API (schema included where it has one). */
async function described(name: string): Promise<Record<string, unknown>> {
  const url = `${chromaUrl()}/api/v2/tenants/default_tenant/databases/default_database/collections/${encodeURIComponent(name)}`;
  return (await (await fetch(url)).json()) as Record<string, unknown>;
}

/** Add requests seen by a proxy, with their body sizes. */
const addsSeen = (proxy: HttpFaultProxy) => proxy.requests.filter((r) => r.method === "POST" && /\/add$/.test(r.path));

/** Re-signs an edited manifest by docs/format.md's rule: SHA-256 of its compact JSON without `checksum`. */
function signed(manifest: Record<string, unknown>): string {
  const { checksum: _old, ...unsigned } = manifest;
  const checksum = createHash("sha256").update(JSON.stringify(unsigned)).digest("hex");
  return `${JSON.stringify({ ...unsigned, checksum }, null, 2)}\n`;
}

/** Records read from a backup by the independent reader, sorted by id as `snapshotOf` sorts them. */
const sortedRows = (records: ReadRecord[]) =>
  records.map((r) => ({ ...r, metadata: r.metadata as Metadata | null })).sort((a, b) => (a.id < b.id ? -1 : 1));

const V1 = { collection: "legacy_v1", backupId: "20261126T125020559Z-3b0208" };
const V2_CURRENT = { collection: "modern_v2", backupId: "20261126T125859711Z-80a0ad" };

describe("writes within the server's limits", () => {
  let proxy: HttpFaultProxy;
  beforeAll(async () => {
    proxy = await startHttpFaultProxy(chromaUrl());
  });
  afterAll(() => proxy.close());

  // Enough 1536-dimension records that one request of them all would be over Chroma's 40 MiB body cap, so the restore
  // must cut batches by bytes, not only by the server's max batch size (5,461). Current Chroma takes embeddings as
  // base64 (8 KiB a record: over 5,120 records); 1.0.5 as decimal text (18+ bytes a value: over 1,520 records), where
  // 6,000 records cost minutes on a loaded machine and proved nothing more.
  const wide = current ? 6000 : 2500;
  it(`a ${wide} × 1536 collection restores with default settings (all of it in one request is over 40 MiB)`, { timeout: 600_000 }, async () => {
    const source = uniqueName("wide");
    // A sparse, cheaply built index (the restore copies it): what is tested is the size of the writes, and building
    // the default index for the source and again for the copy took most of the test's time.
    await seedCollection(chroma, source, wide, 1536, { configuration: { hnsw: { ef_construction: 10, max_neighbors: 4 } } });
    const { store } = freshStore();
    const made = await backup.process(backup.payload.parse({ collection: source }), jobContext({ chroma, backupStore: store }));
    expect(made.records).toBe(wide);

    const target = uniqueName("wide_restored");
    const restored = await restore.process(restore.payload.parse({ collection: target, backupId: made.backupId }), jobContext({ chroma, backupStore: store }));
    expect(restored.records).toBe(wide);

    const [a, b] = await Promise.all([chroma.openCollection(source), chroma.openCollection(target)]);
    expect(await b.count()).toBe(wide);
    for (let start = 0; start < wide; start += 500) {
      const ids = Array.from({ length: 500 }, (_, i) => `rec-${start + i}`);
      const include = ["embeddings", "documents", "metadatas"] as const;
      const [x, y] = await Promise.all([a.get({ ids, include: [...include] }), b.get({ ids, include: [...include] })]);
      expect(y.ids).toEqual(x.ids);
      expect(y.documents).toEqual(x.documents);
      // Byte for byte as float32, compared as buffers: matching 6,000 × 1536 values one by one took 40 s.
      const float32 = (row: number[] | null | undefined) => Buffer.from(new Float32Array(row ?? []).buffer);
      expect(y.ids.filter((id, i) => !float32(y.embeddings[i]).equals(float32(x.embeddings[i])))).toEqual([]);
    }
  });

  describe("from the command line", () => {
    const source = uniqueName("cli_limits");
    const { env } = freshStore();
    let backupId: string;
    beforeAll(async () => {
      await seedCollection(chroma, source, 600, 64);
      const made = await runCli(["run", "backup", "--collection", source, "--json"], env);
      expect(made.stderr).toBe("");
      backupId = (JSON.parse(made.stdout) as { backupId: string }).backupId;
    });

    it("restore <backupId> --batch-size N writes N records at a time, as the README says", async () => {
      const before = addsSeen(proxy).length;
      const target = uniqueName("cli_batched");
      const result = await runCli(["restore", backupId, "--to", target, "--batch-size", "150", "--json"], { ...env, CHROMA_URL: proxy.url });
      expect(result.stderr).toBe("");
      expect(JSON.parse(result.stdout)).toMatchObject({ collection: target, records: 600 });
      expect(addsSeen(proxy).length - before).toBe(4);
      expect(await (await chroma.openCollection(target)).count()).toBe(600);
    });

    it("VK_CHROMA_MAX_REQUEST_BYTES lowers the body cap for a proxy with a smaller limit", async () => {
      const before = addsSeen(proxy).length;
      const target = uniqueName("cli_capped");
      const result = await runCli(["restore", backupId, "--to", target, "--json"], {
        ...env,
        CHROMA_URL: proxy.url,
        VK_CHROMA_MAX_REQUEST_BYTES: "65536",
      });
      expect(result.stderr).toBe("");
      const sizes = addsSeen(proxy).slice(before).map((r) => r.bytes ?? Number.NaN);
      // 600 records of 64 dimensions take ~220 kB as one request.
      expect(sizes.length).toBeGreaterThanOrEqual(4);
      expect(Math.max(...sizes)).toBeLessThanOrEqual(65536);
      expect(await (await chroma.openCollection(target)).count()).toBe(600);
    });
  });
});

describe("full fidelity", () => {
  it("URIs (and, on current Chroma, array metadata) round-trip exactly and are listed in the manifest's features", async () => {
    const source = uniqueName("uris");
    const collection = await chroma.client.createCollection({ name: source, embeddingFunction: null });
    const embeddings = vectors(30, 16, 3);
    for (let i = 0; i < 30; i++) {
      const metadata: Metadata = current ? { tags: ["a", `b${i}`], scores: [i, i + 0.5], flags: [i % 2 === 0], n: i } : { n: i };
      await collection.add({
        ids: [`r${i}`],
        embeddings: [embeddings[i]!],
        // Every shape: with and without a URI, a document, metadata.
        ...(i % 2 === 0 ? { uris: [`s3://bucket/img-${i}.png`] } : {}),
        ...(i % 3 === 0 ? { documents: [`doc ${i}`] } : {}),
        ...(i % 5 !== 0 ? { metadatas: [metadata] } : {}),
      });
    }
    const { store } = freshStore();
    const made = await backup.process(backup.payload.parse({ collection: source, chunkRecords: 7 }), jobContext({ chroma, backupStore: store }));
    const manifest = await readManifest(store, source, made.backupId);
    expect(manifest.formatVersion).toBe(2);
    expect(manifest.features).toEqual(current ? ["schema", "arrayMetadata", "uris"] : ["uris"]);

    const target = uniqueName("uris_restored");
    await restore.process(restore.payload.parse({ collection: target, backupId: made.backupId }), jobContext({ chroma, backupStore: store }));
    const [before, after] = await Promise.all([snapshotOf(chroma, source), snapshotOf(chroma, target)]);
    expect(after.rows.filter((r) => r.uri !== null)).toHaveLength(15);
    if (current) expect(after.rows.find((r) => r.id === "r1")?.metadata).toEqual({ tags: ["a", "b1"], scores: [1, 1.5], flags: [false], n: 1 });
    expectSameRows(after.rows, before.rows, 0);

    // A drill restores the same backup and compares every record, URIs included.
    const drilled = await drill.process(drill.payload.parse({ collection: source, sampleRecords: 30 }), jobContext({ chroma, backupStore: store }));
    expect(drilled).toMatchObject({ records: 30, sampled: 30, sameInSource: 30 });
  });

  if (current) {
    it("a collection with full-text search and two inverted indexes switched off comes back with them off", async () => {
      const source = uniqueName("schema");
      const schema = new Schema()
        .deleteIndex(new FtsIndexConfig(), "#document")
        .deleteIndex(new StringInvertedIndexConfig(), "tag")
        .deleteIndex(new IntInvertedIndexConfig(), "n");
      const collection = await chroma.client.createCollection({ name: source, schema, embeddingFunction: null, metadata: { owner: "ops" } });
      const embeddings = vectors(25, 32, 5);
      await collection.add({
        ids: embeddings.map((_, i) => `s${i}`),
        embeddings,
        documents: embeddings.map((_, i) => `document ${i}`),
        metadatas: embeddings.map((_, i) => ({ tag: `t${i % 4}`, n: i, other: "kept" })),
      });
      const original = await described(source);
      const keys = (original.schema as { keys: Record<string, Record<string, Record<string, { enabled: boolean }>>> }).keys;
      expect(keys["#document"]!.string!.fts_index!.enabled).toBe(false);
      expect(keys.tag!.string!.string_inverted_index!.enabled).toBe(false);
      expect(keys.n!.int!.int_inverted_index!.enabled).toBe(false);

      const { store } = freshStore();
      const made = await backup.process(backup.payload.parse({ collection: source }), jobContext({ chroma, backupStore: store }));
      const manifest = await readManifest(store, source, made.backupId);
      expect(manifest.collection.schema).toEqual(original.schema);
      expect(manifest.features).toContain("schema");

      const target = uniqueName("schema_restored");
      await restore.process(restore.payload.parse({ collection: target, backupId: made.backupId }), jobContext({ chroma, backupStore: store }));
      const copy = await described(target);
      expect(copy.schema).toEqual(original.schema);
      expect(copy.configuration_json).toEqual(original.configuration_json);
      expect(copy.metadata).toEqual({ owner: "ops" });
      const [before, after] = await Promise.all([snapshotOf(chroma, source), snapshotOf(chroma, target)]);
      expectSameRows(after.rows, before.rows, 0);
    });

    it("a collection deleted by vectorkeeper leaves no array metadata behind for records written later (chroma#7594)", async () => {
      const gone = uniqueName("arrays_gone");
      const doomed = await chroma.client.createCollection({ name: gone, embeddingFunction: null });
      await doomed.add({ ids: ["a", "b"], embeddings: [[1, 2], [3, 4]], metadatas: [{ ghost: ["x", "y"] }, { ghost: ["z"] }] });
      await chroma.deleteCollection(gone);
      const next = await chroma.client.createCollection({ name: uniqueName("arrays_next"), embeddingFunction: null });
      await next.add({ ids: ["a", "b"], embeddings: [[1, 2], [3, 4]], metadatas: [{ n: 1 }, { n: 2 }] });
      expect((await next.get({ include: ["metadatas"] })).metadatas).toEqual([{ n: 1 }, { n: 2 }]);
    });

    it("a backup made on current Chroma (schema, array metadata, URIs) restores exactly", async () => {
      const { root, env } = freshStore("backup-v2-current");
      const target = uniqueName("modern");
      const result = await runCli(["restore", V2_CURRENT.backupId, "--to", target, "--json"], env);
      expect(result.stderr).toBe("");
      const saved = readBackup(root, V2_CURRENT.collection, V2_CURRENT.backupId);
      const copy = await described(target);
      expect(copy.schema).toEqual((saved.manifest.collection as { schema: unknown }).schema);
      expectSameRows((await snapshotOf(chroma, target)).rows, sortedRows(saved.records), 0);
    });
  } else {
    it("a backup holding a schema and array metadata is refused before anything is written, naming both and the server", async () => {
      const { env } = freshStore("backup-v2-current");
      const before = await chroma.listCollectionNames();
      const result = await runCli(["restore", V2_CURRENT.backupId, "--to", uniqueName("modern")], env);
      expect(result.code).toBe(2);
      const lines = result.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/holds a collection schema .* and array metadata values .* which the Chroma at http:\/\/127\.0\.0\.1:\d+ cannot hold/);
      expect(result.stdout).toBe("");
      expect(await chroma.listCollectionNames()).toEqual(before);
    });
  }

  // Three CLI processes one after another: over a minute on a loaded two-core machine.
  it("a backup of format version 1 still lists, verifies and restores", { timeout: 180_000 }, async () => {
    const { root, env } = freshStore("backup-v1");
    const listed = await runCli(["backups", "list", "--json"], env);
    expect(JSON.parse(listed.stdout)).toMatchObject({ backups: [{ backupId: V1.backupId, collection: V1.collection, records: 12 }], damaged: [] });
    const verified = await runCli(["backups", "verify", V1.backupId, "--json"], env);
    expect(verified.stderr).toBe("");
    expect(JSON.parse(verified.stdout)).toMatchObject({ ok: true, chunksChecked: 3, recordsChecked: 12 });

    const target = uniqueName("legacy");
    const restored = await runCli(["restore", V1.backupId, "--to", target, "--json"], env);
    expect(restored.stderr).toBe("");
    expect(JSON.parse(restored.stdout)).toMatchObject({ collection: target, records: 12 });
    const copy = await snapshotOf(chroma, target);
    expect(copy.metadata).toEqual({ owner: "team-ü", version: 1 });
    expect(copy.hnsw).toMatchObject({ space: "cosine", ef_construction: 120 });
    const expected = sortedRows(readBackup(root, V1.collection, V1.backupId).records);
    expect(expected.find((r) => r.id === "old-0")).toMatchObject({ document: "doc old-0 — ü 東京", metadata: { n: 0, f: 0.5, b: true, s: "x" } });
    // Cosine: Chroma re-normalizes what it is given, which may move the last bits.
    expectSameRows(copy.rows, expected);
  });
});

describe("the collection description (schema included)", () => {
  it("is asked again when its connection breaks, as the client's reads are", async () => {
    const proxy = await startHttpFaultProxy(chromaUrl());
    try {
      const name = uniqueName("described");
      await seedCollection(chroma, name, 10, 4);
      const via = new ChromaStore({ url: proxy.url, tenant: "default_tenant", database: "default_database" });
      // The backup opens the collection twice through the client, then asks for its description: that one breaks.
      proxy.inject({ method: "GET", path: new RegExp(`/collections/${name}$`), skip: 2, times: 1, fault: { kind: "reset", afterBytes: 0 } });
      const { store } = freshStore();
      const made = await backup.process(backup.payload.parse({ collection: name }), jobContext({ chroma: via, backupStore: store }));
      expect(made.records).toBe(10);
      expect(proxy.requests.filter((r) => r.fault === "reset")).toHaveLength(1);
    } finally {
      await proxy.close();
    }
  });
});

describe("a backup holding what this version cannot restore", () => {
  it("a chunk with an unknown field fails verify and restore with one line naming it, before any write", async () => {
    const { root, env } = freshStore("backup-v1");
    const folder = join(root, V1.collection, V1.backupId);
    const manifest = JSON.parse(readFileSync(join(folder, "manifest.json"), "utf8")) as { chunks: { key: string; bytes: number; sha256: string }[] };
    const chunk = manifest.chunks[1]!;
    const raw = gunzipSync(readFileSync(join(folder, chunk.key)));
    const length = raw.readUInt32LE(4);
    const text = JSON.parse(raw.subarray(8, 8 + length).toString("utf8")) as Record<string, unknown>;
    const json = Buffer.from(JSON.stringify({ ...text, sparse_embeddings: [] }), "utf8");
    const header = Buffer.alloc(8);
    raw.copy(header, 0, 0, 4);
    header.writeUInt32LE(json.length, 4);
    const stored = gzipSync(Buffer.concat([header, json, raw.subarray(8 + length)]));
    writeFileSync(join(folder, chunk.key), stored);
    chunk.bytes = stored.length;
    chunk.sha256 = createHash("sha256").update(stored).digest("hex");
    writeFileSync(join(folder, "manifest.json"), signed(manifest));

    const verified = await runCli(["backups", "verify", V1.backupId], env);
    expect(verified.code).not.toBe(0);
    expect(verified.stderr.trim().split("\n").at(-1)).toMatch(/chunk-000001\.vkc\.gz .* holds field "sparse_embeddings"/);

    const before = await chroma.listCollectionNames();
    const restored = await runCli(["restore", V1.backupId, "--to", uniqueName("never")], env);
    expect(restored.code).toBe(1);
    expect(restored.stderr.trim().split("\n")).toEqual([expect.stringMatching(/chunk-000001\.vkc\.gz .* holds field "sparse_embeddings", which this vectorkeeper .* cannot restore/)]);
    expect(await chroma.listCollectionNames()).toEqual(before);
  });

  it.each([
    ["an unknown field", (m: Record<string, unknown>) => ({ ...m, encryption: { cipher: "aes-256-gcm" } }), /holds field "encryption", which this vectorkeeper .* cannot restore/],
    ["an unknown feature", (m: Record<string, unknown>) => ({ ...m, features: [...(m.features as string[]), "sparseVectors"] }), /uses feature features\.3, which this vectorkeeper .* cannot restore/],
  ])("a manifest with %s is refused with one line naming it", async (_, edit, message) => {
    const { root, env } = freshStore("backup-v2-current");
    const path = join(root, V2_CURRENT.collection, V2_CURRENT.backupId, "manifest.json");
    writeFileSync(path, signed(edit(JSON.parse(readFileSync(path, "utf8")) as Record<string, unknown>)));
    const before = await chroma.listCollectionNames();
    const result = await runCli(["restore", V2_CURRENT.backupId, "--to", uniqueName("never")], env);
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split("\n")).toEqual([expect.stringMatching(message)]);
    expect(await chroma.listCollectionNames()).toEqual(before);
  });
});

describe("Chroma stopped mid-restore", () => {
  it("leaves no collection under the target name; a re-run restores it whole", { timeout: 300_000 }, async () => {
    const path = tempDir("stopped");
    const server = inject("chromaServer");
    let local = await startLocalChroma({ path, server });
    const own = chromaStore(local.url);
    const source = uniqueName("stopped");
    await seedCollection(own, source, 3000, 64);
    const { store } = freshStore();
    const made = await backup.process(backup.payload.parse({ collection: source }), jobContext({ chroma: own, backupStore: store }));

    const target = uniqueName("stopped_target");
    let killed = false;
    const attempt = restore.process(
      restore.payload.parse({ collection: target, backupId: made.backupId, batchSize: 100 }),
      jobContext({
        chroma: own,
        backupStore: store,
        progress: async (p) => {
          if (p.unit === "records" && p.done >= 500 && !killed) {
            killed = true;
            local.process.kill("SIGKILL");
          }
        },
      }),
    );
    await expect(attempt).rejects.toThrow();
    expect(killed).toBe(true);
    await new Promise((resolve) => (local.process.exitCode !== null || local.process.signalCode !== null ? resolve(null) : local.process.once("exit", resolve)));

    local = await startLocalChroma({ path, server, port: local.port });
    try {
      const again = chromaStore(local.url);
      expect(await again.listCollectionNames()).not.toContain(target);
      const result = await restore.process(restore.payload.parse({ collection: target, backupId: made.backupId }), jobContext({ chroma: again, backupStore: store }));
      expect(result.records).toBe(3000);
      expect(await (await again.openCollection(target)).count()).toBe(3000);
      expect((await again.listCollectionNames()).filter((name) => name.startsWith(`${target}__`))).toEqual([]);
    } finally {
      await local.stop();
    }
  });
});
