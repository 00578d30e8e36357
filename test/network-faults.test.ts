import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import type { NetworkOptions } from "../src/config/defaults.js";
import { backup } from "../src/jobs/backup.js";
import { verify } from "../src/jobs/verify.js";
import { completeBackups } from "../src/storage/backup-format/backup-catalog.js";
import { ChromaStore, ChromaUnavailableError } from "../src/storage/chroma/client.js";
import { S3Store } from "../src/storage/objects/s3-store.js";
import { S3_CREDENTIALS } from "./helpers/backup-fixtures.js";
import { startHttpFaultProxy, type HttpFaultProxy } from "./helpers/fault-proxy.js";
import { chromaStore, chromaUrl, jobContext, seedCollection, uniqueName } from "./helpers/services.js";

// Failure 4 of issue 10 and the partials on truncated or reset downloads: every network call has a time limit, a
// retry with backoff, and an error that names the server and the object. Real s3rver and Chroma, behind proxies.
const collection = uniqueName("net_faults");
const RECORDS = 300;
// Short limits keep the tests short; the defaults are checked on their own below.
const FAST: Partial<NetworkOptions> = { idleTimeoutMs: 1500, connectTimeoutMs: 1000, retryBaseMs: 50, chromaRequestTimeoutMs: 3000 };

let s3: HttpFaultProxy;
let chromaProxy: HttpFaultProxy;
beforeAll(async () => {
  await seedCollection(chromaStore(), collection, RECORDS, 32);
  s3 = await startHttpFaultProxy(inject("s3Endpoint"));
  chromaProxy = await startHttpFaultProxy(chromaUrl());
});
afterAll(async () => {
  await s3.close();
  await chromaProxy.close();
});

const s3Store = (network: Partial<NetworkOptions> = FAST) =>
  new S3Store({
    bucket: "vk-test",
    prefix: uniqueName("net"),
    endpoint: s3.url,
    forcePathStyle: true,
    region: "us-east-1",
    credentials: S3_CREDENTIALS,
    network,
  });
const chromaBehindProxy = () =>
  new ChromaStore({ url: chromaProxy.url, tenant: "default_tenant", database: "default_database", network: FAST });
const backupPayload = backup.payload.parse({ collection, chunkRecords: 100 });

describe("S3 behind a faulty wire", () => {
  it("retries a chunk upload that stalls once, and the backup completes and verifies", async () => {
    const store = s3Store();
    const remove = s3.inject({ method: "PUT", path: /chunk-000001/, times: 1, fault: { kind: "stall" } });
    try {
      const ctx = jobContext({ backupStore: store });
      const result = await backup.process(backupPayload, ctx);
      expect(result).toMatchObject({ records: RECORDS, chunks: 3 });
      expect(s3.requests.filter((r) => r.fault === "stall")).toHaveLength(1);
      expect(await verify.process(verify.payload.parse({ collection, backupId: result.backupId }), ctx)).toMatchObject({ ok: true });
    } finally {
      remove();
    }
  });

  it("fails a backup whose chunk upload stalls every time, in bounded time, naming the store and the chunk", async () => {
    const store = s3Store();
    const remove = s3.inject({ method: "PUT", path: /chunk-000001/, fault: { kind: "stall" } });
    const started = Date.now();
    try {
      await expect(backup.process(backupPayload, jobContext({ backupStore: store }))).rejects.toThrow(
        /chunk-000001\.vkc\.gz on s3:\/\/vk-test\/\S+ at http:\/\/127\.0\.0\.1:\d+ failed after 4 attempts: .*timed out/,
      );
    } finally {
      remove();
    }
    // Four attempts of 1.5 s idle each, plus backoff: far from "forever".
    expect(Date.now() - started).toBeLessThan(40_000);
    expect((await completeBackups(store, collection)).backups).toEqual([]);
  });

  it("retries chunk downloads cut short (reset, truncated), and names store and object when they never succeed", async () => {
    const store = s3Store();
    const ctx = jobContext({ backupStore: store });
    const { backupId } = await backup.process(backupPayload, ctx);
    const check = () => verify.process(verify.payload.parse({ collection, backupId }), ctx);

    const removeReset = s3.inject({ method: "GET", path: /chunk-000000/, times: 1, fault: { kind: "reset", afterBytes: 100 } });
    const removeTruncate = s3.inject({ method: "GET", path: /chunk-000002/, times: 1, fault: { kind: "truncate", afterBytes: 100 } });
    expect(await check()).toMatchObject({ ok: true, recordsChecked: RECORDS });
    expect(s3.requests.filter((r) => r.fault === "reset" || r.fault === "truncate")).toHaveLength(2);
    removeReset();
    removeTruncate();

    const always = s3.inject({ method: "GET", path: /chunk-000001/, fault: { kind: "reset", afterBytes: 100 } });
    try {
      await expect(check()).rejects.toThrow(new RegExp(`chunk-000001\\.vkc\\.gz on s3://vk-test/\\S+ .*failed after 4 attempts: the download broke off`));
    } finally {
      always();
    }
  });

  it("reports a failed multipart part as that part's failure, not as the abort's", async () => {
    const store = s3Store({ ...FAST, attempts: 2 });
    const remove = s3.inject({ method: "PUT", path: /partNumber=2/, fault: { kind: "status", status: 500 } });
    try {
      const error = await store.put("big/object.bin", randomBytes(9 * 1024 * 1024)).then(
        () => undefined,
        (e: unknown) => e as Error,
      );
      expect(error?.message).toMatch(/big\/object\.bin/);
      expect(error?.message).not.toMatch(/MethodNotAllowed/);
    } finally {
      remove();
    }
  });
});

describe("Chroma behind a faulty wire", () => {
  it("retries a page read that stalls, resets or answers 503 once; the backup completes", async () => {
    const chroma = chromaBehindProxy();
    const removes = [
      chromaProxy.inject({ method: "POST", path: /\/get$/, skip: 1, times: 1, fault: { kind: "stall" } }),
      chromaProxy.inject({ method: "POST", path: /\/get$/, skip: 2, times: 1, fault: { kind: "reset", afterBytes: 50 } }),
      chromaProxy.inject({ method: "POST", path: /\/get$/, skip: 3, times: 1, fault: { kind: "status", status: 503 } }),
    ];
    try {
      const result = await backup.process(backup.payload.parse({ collection, chunkRecords: 100, pageSize: 50 }), jobContext({ chroma }));
      expect(result).toMatchObject({ records: RECORDS });
      expect(chromaProxy.requests.filter((r) => r.fault).map((r) => r.fault).sort()).toEqual(["reset", "stall", "status"]);
    } finally {
      for (const remove of removes) remove();
    }
  });

  it("sends a read again when its connection broke, and a write never twice", async () => {
    const chroma = chromaBehindProxy();
    const first = chromaProxy.requests.length;
    const remove = chromaProxy.inject({ method: "GET", path: /\/collections\/[^/]+$/, times: 1, fault: { kind: "reset", afterBytes: 0 } });
    try {
      expect(await (await chroma.openCollection(collection)).count()).toBe(RECORDS);
      expect(chromaProxy.requests.slice(first).filter((r) => r.fault === "reset")).toHaveLength(1);
    } finally {
      remove();
    }
    const name = uniqueName("net_write");
    const seen = chromaProxy.requests.length;
    const removeWrite = chromaProxy.inject({ method: "POST", path: /\/collections$/, times: 1, fault: { kind: "reset", afterBytes: 0 } });
    try {
      await expect(chroma.client.createCollection({ name, embeddingFunction: null })).rejects.toThrow(ChromaUnavailableError);
      expect(chromaProxy.requests.slice(seen).filter((r) => r.method === "POST" && /\/collections$/.test(r.path))).toHaveLength(1);
    } finally {
      removeWrite();
    }
  });

  it("ends a client call that never answers, naming Chroma's URL and the request", async () => {
    const chroma = chromaBehindProxy();
    const remove = chromaProxy.inject({ method: "GET", path: /\/collections\//, fault: { kind: "stall" } });
    try {
      const error = await chroma.openCollection(collection).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(ChromaUnavailableError);
      expect((error as Error).message).toMatch(
        new RegExp(`Chroma at ${chromaProxy.url} did not answer GET /api/v2/\\S+ within 3000 ms`),
      );
    } finally {
      remove();
    }
  });

  it("names Chroma's URL when its reads keep breaking off (not a bare 'socket hang up')", async () => {
    const chroma = chromaBehindProxy();
    const remove = chromaProxy.inject({ method: "POST", path: /\/get$/, skip: 1, fault: { kind: "reset", afterBytes: 0 } });
    try {
      await expect(backup.process(backupPayload, jobContext({ chroma }))).rejects.toThrow(
        new RegExp(`Chroma at ${chromaProxy.url} \\(CHROMA_URL\\) closed the connection while ${collection} was read \\(.*; 4 attempts\\)`),
      );
    } finally {
      remove();
    }
  });
});
