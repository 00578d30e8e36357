import { createHash, randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { beforeAll, describe, expect, it } from "vitest";
import { backup } from "../src/jobs/backup.js";
import { restore } from "../src/jobs/restore.js";
import { verify } from "../src/jobs/verify.js";
import { completeBackups, readManifest } from "../src/storage/backup-format/backup-catalog.js";
import { EncryptedStore, readKeyFile } from "../src/storage/backup-format/encrypted-store.js";
import { SEALED_OVERHEAD } from "../src/storage/backup-format/encryption.js";
import { backupFolder, packsFolder } from "../src/storage/backup-format/layout.js";
import type { PackedChunk } from "../src/storage/backup-format/manifest.js";
import { chunkContext } from "../src/storage/backup-format/packs.js";
import { HEADER_KEY, openRepository } from "../src/storage/backup-format/repository-header.js";
import { FsStore } from "../src/storage/objects/fs-store.js";
import type { ObjectStore } from "../src/storage/objects/object-store.js";
import { runCli } from "./helpers/cli.js";
import { keyFile, snapshotOf, STORES } from "./helpers/backup-fixtures.js";
import { chromaStore, jobContext, testEnv, uniqueName, vectors } from "./helpers/services.js";
import { tempDir } from "./helpers/temp-dir.js";

const chroma = chromaStore();
const DOCUMENT = "the harbour ledger of captain Quillfeather";
const METADATA_VALUE = "bluefin-omega-7731";

async function rawObjects(store: ObjectStore): Promise<Map<string, Buffer>> {
  const all = new Map<string, Buffer>();
  for await (const object of store.list("")) all.set(object.key, await store.get(object.key));
  return all;
}

describe.each(STORES)("encrypted backups on $name", ({ open }) => {
  const source = uniqueName("secret");
  const { store: inner, env: storeEnv } = open();
  const keyPath = keyFile();
  const store = new EncryptedStore(inner, readKeyFile(keyPath));
  const ctx = (backupStore: ObjectStore = store) => jobContext({ chroma, backupStore });
  // Uncompressed, so a plain store would show the text as is: the grep below would find it without encryption.
  const run = (backupStore: ObjectStore, dedupe: boolean) =>
    backup.process(backup.payload.parse({ collection: source, dedupe, compression: "none" }), ctx(backupStore));
  let deduped: Awaited<ReturnType<typeof run>>;
  let full: Awaited<ReturnType<typeof run>>;

  beforeAll(async () => {
    const collection = await chroma.client.createCollection({ name: source, embeddingFunction: null, configuration: { hnsw: { space: "l2" } } });
    const count = 40;
    await collection.add({
      ids: Array.from({ length: count }, (_, i) => `rec-${i}`),
      embeddings: vectors(count, 16, 5),
      documents: Array.from({ length: count }, (_, i) => `${DOCUMENT} page ${i}`),
      metadatas: Array.from({ length: count }, (_, i) => ({ codename: METADATA_VALUE, page: i })),
    });
    deduped = await run(store, true);
    full = await run(store, false);
  }, 120_000);

  it("leaves no document text, metadata value or plaintext hash in any object; only the header is readable", async () => {
    const raw = await rawObjects(inner);
    // The header, the packs, two manifests and the full backup's chunks.
    expect(raw.size).toBeGreaterThan(4);
    for (const [key, bytes] of raw) {
      expect(bytes.includes(Buffer.from(DOCUMENT)), key).toBe(false);
      expect(bytes.includes(Buffer.from(METADATA_VALUE)), key).toBe(false);
      expect(bytes.includes(Buffer.from(source)) && key !== HEADER_KEY, key).toBe(false);
    }
    const header = JSON.parse(raw.get(HEADER_KEY)!.toString("utf8")) as { keyId: string; kdf: { name: string } };
    expect(header).toMatchObject({ format: "vectorkeeper-repository", encryption: "aes-256-gcm", kdf: { name: "scrypt" } });
    // Chunk names are keyed: none is the SHA-256 of the chunk's (decrypted) bytes.
    const manifest = await readManifest(store, source, deduped.backupId);
    for (const chunk of manifest.chunks as PackedChunk[]) {
      const sealed = await inner.getRange(packsFolder(source) + manifest.packs![chunk.pack]!.name, chunk.offset, chunk.bytes);
      const plain = await store.openBlob(chunkContext(source, chunk.key), sealed, chunk.key);
      expect(plain.length).toBe(chunk.bytes - SEALED_OVERHEAD);
      expect(createHash("sha256").update(plain).digest("hex")).not.toBe(chunk.key);
    }
    // The control: the same backup in a plain store holds the text as is.
    const plainStore = STORES[0]!.open().store;
    await run(plainStore, true);
    const plainRaw = [...(await rawObjects(plainStore)).values()];
    expect(plainRaw.some((b) => b.includes(Buffer.from(DOCUMENT)))).toBe(true);
    expect(plainRaw.some((b) => b.includes(Buffer.from(METADATA_VALUE)))).toBe(true);
  });

  it("restores and verifies with the key, bit for bit", async () => {
    const before = await snapshotOf(chroma, source);
    for (const made of [deduped, full]) {
      const target = uniqueName("secret_restored");
      await restore.process(restore.payload.parse({ collection: target, backupId: made.backupId }), ctx());
      expect((await snapshotOf(chroma, target)).rows).toEqual(before.rows);
      expect(await verify.process(verify.payload.parse({ collection: source, backupId: made.backupId }), ctx())).toMatchObject({ recordsChecked: 40 });
    }
    const second = await run(store, true);
    expect(second.reusedChunks).toBe(second.chunks);
  });

  it("counts what a run wrote as stored: each object with its envelope", async () => {
    // Every chunk of the first backup was new. Each chunk is sealed in its pack (its listed size holds its envelope);
    // the manifest, sealed whole, adds one more envelope.
    expect(deduped.uploadedBytes).toBe(deduped.bytes + SEALED_OVERHEAD);
    let packed = 0;
    for await (const object of inner.list(packsFolder(source))) packed += object.size;
    for await (const object of inner.list(backupFolder(source, deduped.backupId))) packed += object.size;
    expect(deduped.uploadedBytes).toBe(packed);
    expect(full.uploadedBytes).toBe(full.bytes + SEALED_OVERHEAD * (full.chunks + 1));
    let stored = 0;
    for await (const object of inner.list(`${source}/${full.backupId}/`)) stored += object.size;
    expect(full.uploadedBytes).toBe(stored);
  });


  it("a missing or wrong key names the key id the backups need; mixing keys or plain backups is refused", async () => {
    const keyId = (JSON.parse((await inner.get(HEADER_KEY)).toString("utf8")) as { keyId: string }).keyId;
    await expect(completeBackups(inner, source)).rejects.toThrow(`the backups are encrypted with key ${keyId}: set VK_BACKUP_KEY_FILE`);
    await expect(run(inner, true)).rejects.toThrow(`encrypted with key ${keyId}`);
    const wrong = new EncryptedStore(inner, readKeyFile(keyFile()));
    await expect(completeBackups(wrong, source)).rejects.toThrow(new RegExp(`encrypted with key ${keyId}, but VK_BACKUP_KEY_FILE holds key [0-9a-f]{16}`));
    const target = uniqueName("secret_never");
    await expect(restore.process(restore.payload.parse({ collection: target, backupId: full.backupId }), ctx(wrong))).rejects.toThrow(keyId);
    expect(await chroma.listCollectionNames()).not.toContain(target);

    const plain = STORES[0]!.open().store;
    await run(plain, false);
    await expect(run(new EncryptedStore(plain, readKeyFile(keyFile())), true)).rejects.toThrow(/holds unencrypted backups .* one store holds one key/);
  });

  it("a tampered chunk or manifest fails naming the object, writing nothing", async () => {
    const manifest = await readManifest(store, source, deduped.backupId);
    const key = packsFolder(source) + manifest.packs![0]!.name;
    const original = await inner.get(key);
    const flipped = Buffer.from(original);
    flipped[flipped.length - 20]! ^= 1;
    await inner.put(key, flipped);
    const target = uniqueName("secret_tampered");
    await expect(restore.process(restore.payload.parse({ collection: target, backupId: deduped.backupId }), ctx())).rejects.toThrow(
      `${key} in ${inner.description} fails authentication`,
    );
    expect(await chroma.listCollectionNames()).not.toContain(target);
    await inner.put(key, original);
  });

  it("the CLI gives one line and exit 2 naming the key id for a wrong or missing key", async () => {
    const keyId = (JSON.parse((await inner.get(HEADER_KEY)).toString("utf8")) as { keyId: string }).keyId;
    const env = testEnv(storeEnv);
    const extras: Record<string, string>[] = [{}, { VK_BACKUP_KEY_FILE: keyFile() }];
    for (const extra of extras) {
      const listed = await runCli(["backups", "list"], { ...env, ...extra });
      expect(listed.code).toBe(2);
      const lines = listed.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toContain(`encrypted with key ${keyId}`);
    }
    const good = await runCli(["backups", "list", "--json"], { ...env, VK_BACKUP_KEY_FILE: keyPath });
    expect(good.code).toBe(0);
    expect(good.stderr).not.toContain(readKeyFile(keyPath).toString());
  });
});

describe("conditional create (how the repository header is written)", () => {
  it("of writers racing for one key on file://, exactly one wins and its object stands whole", async () => {
    const { store } = STORES[0]!.open();
    const bodies = Array.from({ length: 8 }, (_, i) => Buffer.alloc(64 * 1024, i));
    const won = await Promise.all(bodies.map((body) => store.create("header.json", body)));
    expect(won.filter(Boolean)).toHaveLength(1);
    expect((await store.get("header.json")).equals(bodies[won.indexOf(true)]!)).toBe(true);
    expect(await store.create("header.json", Buffer.from("later"))).toBe(false);
    // No temp file is left behind by the losers.
    expect(await store.collectUnfinished("", new Date(Date.now() + 60_000), true)).toEqual([]);
  });
});

/** A file:// store whose create cannot refuse, like an S3 server ignoring `If-None-Match`; its first create is held back. */
class IgnoringStore extends FsStore {
  private creates = 0;
  private landed = (): void => undefined;
  readonly firstLanded = new Promise<void>((resolve) => (this.landed = resolve));

  override async create(key: string, body: Uint8Array): Promise<boolean> {
    if (this.creates++ === 0) await sleep(600);
    await this.put(key, body);
    this.landed();
    return true;
  }
}

describe("setting up one encrypted store at once", () => {
  it("three processes agree on one key, also the one adopting a header a late write replaces", async () => {
    const store = new IgnoringStore(tempDir("fs"));
    const secret = readKeyFile(keyFile());
    const writers = [openRepository(store, secret), openRepository(store, secret)];
    // The third starts once one header stands, before the held-back one replaces it.
    await store.firstLanded;
    const adopter = await openRepository(store, secret);
    const keyIds = [...(await Promise.all(writers)), adopter].map((keys) => keys.keyId);
    const stands = (JSON.parse((await store.get(HEADER_KEY)).toString("utf8")) as { keyId: string }).keyId;
    expect(keyIds).toEqual([stands, stands, stands]);
  });

  it("a header asking scrypt for too much work is refused in one line, without running it", async () => {
    const store = new FsStore(tempDir("fs"));
    const kdf = { name: "scrypt", N: 2 ** 15, r: 8, p: 16, salt: randomBytes(16).toString("base64") };
    const header = { format: "vectorkeeper-repository", version: 1, encryption: "aes-256-gcm", keyId: "0123456789abcdef", kdf };
    await store.put(HEADER_KEY, Buffer.from(JSON.stringify(header)));
    const started = Date.now();
    const error = await openRepository(store, readKeyFile(keyFile())).then(() => undefined, (caught: unknown) => caught as Error);
    expect(error?.message).toBe(`${HEADER_KEY} in ${store.description} is invalid at kdf: the repository header was damaged or altered`);
    expect(Date.now() - started).toBeLessThan(1000);
  });
});
