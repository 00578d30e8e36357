import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import type { Collection, Metadata } from "chromadb";
import { expect, inject } from "vitest";
import type { ChromaStore } from "../../src/storage/chroma/client.js";
import { FsStore } from "../../src/storage/objects/fs-store.js";
import type { ObjectStore } from "../../src/storage/objects/object-store.js";
import { S3Store } from "../../src/storage/objects/s3-store.js";
import { uniqueName, vectors } from "./services.js";
import { tempDir, tempFile } from "./temp-dir.js";

export const S3_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

/** The test bucket under `prefix` on the s3rver at `endpoint` (the suite's own, or a fault proxy in front of it). */
export const testS3Store = (prefix: string, endpoint: string = inject("s3Endpoint")): S3Store =>
  new S3Store({ bucket: "vk-test", prefix, endpoint, forcePathStyle: true, region: "us-east-1", credentials: S3_CREDENTIALS });

/** Both object stores, each on a fresh root, so every backup test runs against file:// and a real S3 server. */
export const STORES: { name: string; open(): { store: ObjectStore; env: Record<string, string> } }[] = [
  {
    name: "file://",
    open() {
      const dir = tempDir("fs");
      return { store: new FsStore(dir), env: { BACKUP_URL: `file://${dir}` } };
    },
  },
  {
    name: "s3://",
    open() {
      const prefix = uniqueName("backups");
      const endpoint = inject("s3Endpoint");
      return {
        store: testS3Store(prefix, endpoint),
        env: {
          BACKUP_URL: `s3://vk-test/${prefix}`,
          S3_ENDPOINT: endpoint,
          S3_FORCE_PATH_STYLE: "true",
          S3_REGION: "us-east-1",
          AWS_ACCESS_KEY_ID: S3_CREDENTIALS.accessKeyId,
          AWS_SECRET_ACCESS_KEY: S3_CREDENTIALS.secretAccessKey,
        },
      };
    },
  },
];

/** A fresh VK_BACKUP_KEY_FILE holding a random 32-byte key (base64, as the README says to make one). */
export function keyFile(): string {
  const path = tempFile("key", "key");
  writeFileSync(path, `${randomBytes(32).toString("base64")}\n`);
  return path;
}

export const RICH_DIMENSION = 1536;
export const RICH_CONFIG = { space: "ip", ef_construction: 150, max_neighbors: 24, ef_search: 60 } as const;
export const RICH_METADATA = { owner: "team-ü", version: 3, ratio: 0.5, active: true };

const IDS = ["plain", "with/slash/x", "with space", "日本語", "Ελληνικά", "emoji-🚀", "a:b;c", "ünïcödé"];
const DOCS = ["naïve café — 東京 🚀", "", "line\nbreak \"quoted\" \\ backslash", "Привет мир"];
const EXTREMES = [1.401298464324817e-45, 1.1754943508222875e-38, 3.4028234663852886e38, -3.4028234663852886e38, 1e-40, 0.1];

/**
 * A collection that exercises the format: unicode documents, records with and without documents and metadata
 * interleaved (so one chunk mixes all four shapes), every metadata value type, awkward ids, extreme float32 values
 * and a non-default space and HNSW configuration.
 */
export async function createRichCollection(chroma: ChromaStore, name: string, count = 40): Promise<Collection> {
  const collection = await chroma.client.createCollection({
    name,
    embeddingFunction: null,
    metadata: RICH_METADATA,
    configuration: { hnsw: { ...RICH_CONFIG } },
  });
  const embeddings = vectors(count, RICH_DIMENSION, 7);
  embeddings.forEach((row, i) => EXTREMES.forEach((value, j) => (row[(i * 7 + j * 131) % RICH_DIMENSION] = value)));
  for (let i = 0; i < count; i++) {
    const shape = i % 4;
    const metadata: Metadata = { s: `text ${i} ü`, i: i * 1000 - 7, f: i + 0.25, b: i % 3 === 0, big: 2 ** 40 + i };
    await collection.add({
      ids: [`${IDS[i % IDS.length]}-${i}`],
      embeddings: [embeddings[i]!],
      ...(shape === 0 || shape === 1 ? { documents: [DOCS[i % DOCS.length]!] } : {}),
      ...(shape === 0 || shape === 2 ? { metadatas: [metadata] } : {}),
    });
  }
  return collection;
}

/** Everything a collection holds, sorted by id, with embeddings as float32 bit patterns. */
export async function snapshotOf(chroma: ChromaStore, name: string) {
  const collection = await chroma.openCollection(name);
  const all = await collection.get({ include: ["embeddings", "documents", "metadatas", "uris"] });
  const rows = all.ids.map((id, i) => ({
    id,
    document: all.documents[i] ?? null,
    metadata: all.metadatas[i] ?? null,
    uri: all.uris[i] ?? null,
    bits: Array.from(new Uint32Array(new Float32Array(all.embeddings[i]!).buffer)),
  }));
  rows.sort((a, b) => (a.id < b.id ? -1 : 1));
  return { rows, metadata: collection.metadata, hnsw: (collection.configuration as { hnsw?: Record<string, unknown> }).hnsw };
}

type Row = Awaited<ReturnType<typeof snapshotOf>>["rows"][number];

/**
 * Rows equal in id, document and metadata, and in embedding to within a few float32 ULPs: the most a cosine
 * collection allows, since Chroma re-normalizes every vector written to it. (Non-cosine round trips are bit-exact.)
 */
export function expectSameRows(actual: Row[], expected: Row[], ulps = 4): void {
  expect(actual.map(({ bits: _b, ...rest }) => rest)).toEqual(expected.map(({ bits: _b, ...rest }) => rest));
  actual.forEach((row, r) => {
    const worst = Math.max(...row.bits.map((bit, k) => Math.abs((bit | 0) - (expected[r]!.bits[k]! | 0))));
    expect(worst, `embedding of ${row.id}`).toBeLessThanOrEqual(ulps);
  });
}
