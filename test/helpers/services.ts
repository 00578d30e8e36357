import { randomUUID } from "node:crypto";
import type { Collection, CreateCollectionConfiguration, Metadata } from "chromadb";
import { inject } from "vitest";
import { loadConfig, type Config } from "../../src/config/env.js";
import { createLogger, type Logger } from "../../src/logging.js";
import type { JobContext } from "../../src/jobs/job-context.js";
import { LocalLocks } from "../../src/queues/locks.js";
import { ChromaStore } from "../../src/storage/chroma/client.js";
import { FsStore } from "../../src/storage/objects/fs-store.js";
import { startLocalChroma, type LocalChroma } from "../../src/storage/chroma/local-server.js";
import { tempDir } from "./temp-dir.js";

/**
 * The Chroma of this test worker. Each worker has its own (global-setup.ts), and a worker runs one file at a time, so
 * a file shares its Chroma only with files that ran before it, never with one running beside it.
 */
export function chromaUrl(): string {
  const urls = inject("chromaUrls");
  // 1 to maxWorkers, unique among the workers running at one time.
  const pool = Number(process.env.VITEST_POOL_ID ?? "1");
  return urls[(pool - 1) % urls.length]!;
}

/** A BullMQ prefix no other test (or run) shares; the global teardown deletes every key under the run's prefix. */
export function uniquePrefix(label: string): string {
  return `${inject("runPrefix")}-${label}-${randomUUID().slice(0, 8)}`;
}

/** A collection name no other test file uses on the shared Chroma. */
export function uniqueName(label: string): string {
  return `${label}_${randomUUID().replaceAll("-", "").slice(0, 10)}`;
}

/** The environment of a test daemon or CLI run: the run's Redis and Chroma, its own prefix, a free HTTP port. */
export function testEnv(overrides: Record<string, string> = {}): Record<string, string> {
  return {
    REDIS_URL: inject("redisUrl"),
    CHROMA_URL: chromaUrl(),
    VK_QUEUE_PREFIX: uniquePrefix("env"),
    HTTP_PORT: "0",
    HTTP_HOST: "127.0.0.1",
    SCHEDULE_FILE: "",
    // Warming every collection of the shared test Chroma at each worker start would only add load; tests that
    // cover it turn it on.
    VK_WARM_ON_START: "false",
    ...overrides,
  };
}

export function testConfig(overrides: Record<string, string> = {}): Config {
  return loadConfig(testEnv(overrides));
}

export const quietLogger = (): Logger => createLogger((process.env.TEST_LOG_LEVEL as "info" | undefined) ?? "silent");

/** A Chroma of a test's own (to stop, restart or cut), of the server the run tests against (VK_TEST_CHROMA). */
export function startTestChroma(options: { path: string; port?: number }): Promise<LocalChroma> {
  return startLocalChroma({ ...options, server: inject("chromaServer") });
}

export function chromaStore(url: string = chromaUrl()): ChromaStore {
  return new ChromaStore({ url, tenant: "default_tenant", database: "default_database" });
}

/** Deterministic pseudo-random unit-ish vectors, so failures reproduce. */
export function vectors(count: number, dimension: number, seed = 1): number[][] {
  let state = seed >>> 0 || 1;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
  return Array.from({ length: count }, () => Array.from({ length: dimension }, next));
}

/** What a seeded collection holds besides its embeddings; each default is what seedCollection always wrote. */
export interface SeedOptions {
  /** The collection's configuration, e.g. `{ hnsw: { space: "cosine" } }` (default: the server's). */
  configuration?: CreateCollectionConfiguration;
  /** The collection's own metadata (default: none). */
  metadata?: Metadata;
  /** Record i has id `${idPrefix}${i}` (default "rec-"). */
  idPrefix?: string;
  /** The seed of vectors() (default 1). */
  vectorSeed?: number;
  /** Record i's document (default `document ${i}`). */
  document?: (i: number) => string;
  /** Record i's metadata (default: none). */
  recordMetadata?: (i: number) => Metadata;
}

/** Creates a collection holding `count` records of `dimension`-dim embeddings, written 500 at a time. */
export async function seedCollection(store: ChromaStore, name: string, count: number, dimension: number, options: SeedOptions = {}): Promise<Collection> {
  const { configuration, metadata, idPrefix = "rec-", vectorSeed = 1, document = (i) => `document ${i}`, recordMetadata } = options;
  const collection = await store.client.createCollection({ name, embeddingFunction: null, ...(configuration ? { configuration } : {}), ...(metadata ? { metadata } : {}) });
  const embeddings = vectors(count, dimension, vectorSeed);
  for (let start = 0; start < count; start += 500) {
    const slice = embeddings.slice(start, start + 500);
    const indexes = slice.map((_, i) => start + i);
    await collection.add({
      ids: indexes.map((i) => `${idPrefix}${i}`),
      embeddings: slice,
      documents: indexes.map(document),
      ...(recordMetadata ? { metadatas: indexes.map(recordMetadata) } : {}),
    });
  }
  return collection;
}

/** A job context on the run's Chroma, a fresh backup directory and in-process locks; override what a test needs. */
export function jobContext(overrides: Partial<JobContext> = {}): JobContext {
  return {
    logger: quietLogger(),
    chroma: chromaStore(),
    // Only when the test gives none: a folder made for a store that is then overridden would be made for nothing.
    backupStore: overrides.backupStore ?? new FsStore(tempDir("backups")),
    locks: new LocalLocks(),
    runner: "test",
    followUp: async () => undefined,
    signal: new AbortController().signal,
    progress: async () => undefined,
    ...overrides,
  };
}
