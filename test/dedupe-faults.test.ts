import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { beforeAll, describe, expect, it } from "vitest";
import { exitCodeOf, oneLine } from "../src/cli/output.js";
import { backup, type BackupResult } from "../src/jobs/backup.js";
import { prune } from "../src/jobs/prune.js";
import { restore } from "../src/jobs/restore.js";
import { verify } from "../src/jobs/verify.js";
import { LocalLocks } from "../src/queues/locks.js";
import { readManifest } from "../src/storage/backup-format/backup-catalog.js";
import { EncryptedStore, readKeyFile } from "../src/storage/backup-format/encrypted-store.js";
import { BACKUP_ID, backupFolder, MANIFEST } from "../src/storage/backup-format/layout.js";
import { HEADER_KEY } from "../src/storage/backup-format/repository-header.js";
import type { Manifest, PackedChunk } from "../src/storage/backup-format/manifest.js";
import { chunkContext } from "../src/storage/backup-format/packs.js";
import type { ObjectStore } from "../src/storage/objects/object-store.js";
import { collect, runCli, spawnCli, type CliResult } from "./helpers/cli.js";
import { keyFile, snapshotOf, STORES } from "./helpers/backup-fixtures.js";
import { chromaStore, jobContext, testEnv, uniqueName, vectors } from "./helpers/services.js";

// Bad input and faults of issue 12 for deduplicated (format 4: chunks in packs) backups, plain and encrypted, on file:// and S3. The
// missing-chunk, swapped-chunk and truncated-manifest restores of a plain store are in dedupe.test.ts, the tampered
// ciphertext restore and the key errors of `backups list` in encryption.test.ts; here: the same faults through verify
// and the CLI, on encrypted stores too, a tampered header, a backup killed mid-way, and backups of two collections
// sharing one store at once.

const chroma = chromaStore();

/** A small collection of documents, metadata and 8-dim embeddings: several content-defined chunks. */
async function seed(name: string, count = 40): Promise<void> {
  const collection = await chroma.client.createCollection({ name, embeddingFunction: null, configuration: { hnsw: { space: "l2" } } });
  await collection.add({
    ids: Array.from({ length: count }, (_, i) => `rec-${i}`),
    embeddings: vectors(count, 8, count),
    documents: Array.from({ length: count }, (_, i) => `document ${i} of ${name}`),
    metadatas: Array.from({ length: count }, (_, i) => ({ page: i, tag: `t${i % 5}` })),
  });
}

/**
 * The objects holding a collection's shared records (chunks, or whatever a later layout packs them into): everything
 * under the collection but its backups' folders, found by listing so the test does not depend on the layout.
 */
async function dataObjects(store: ObjectStore, collection: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of store.list(`${collection}/`)) {
    const [, folder, name] = object.key.split("/");
    if (folder && name && !BACKUP_ID.test(folder)) keys.push(object.key);
  }
  return keys.sort();
}

const baseName = (key: string) => key.slice(key.lastIndexOf("/") + 1);

/** Collections on the shared Chroma whose name starts with `target` (a restore's staging collections included). */
async function leftBehind(target: string): Promise<string[]> {
  return (await chroma.listCollectionNames()).filter((name) => name.startsWith(target));
}

/** A failure as the CLI shows it: one line (the whole message) and a non-zero exit. */
function expectOneLineFailure(error: unknown, pattern: RegExp, exitCode?: number): void {
  expect(error).toBeInstanceOf(Error);
  const message = (error as Error).message;
  expect(message).toMatch(pattern);
  expect(message).not.toContain("\n");
  expect(oneLine(error)).toBe(message);
  if (exitCode === undefined) expect(exitCodeOf(error)).not.toBe(0);
  else expect(exitCodeOf(error)).toBe(exitCode);
}

const failureOf = (attempt: Promise<unknown>) =>
  attempt.then(
    () => expect.unreachable("the run succeeded"),
    (error: unknown) => error,
  );

const PACK_BYTES = 1024;

/**
 * Changes one byte of a chunk inside its pack and stores it as the store stores it (sealed again with the right key
 * when encrypted), same size: only the check of the chunk's content against its name can tell.
 */
async function alterChunk(store: ObjectStore, manifest: Manifest, packKey: string): Promise<void> {
  const name = baseName(packKey);
  const pack = manifest.packs!.findIndex((p) => p.name === name);
  const chunk = (manifest.chunks as PackedChunk[]).find((c) => c.pack === pack)!;
  const body = Buffer.from(await store.get(packKey));
  const stored = body.subarray(chunk.offset, chunk.offset + chunk.bytes);
  const context = chunkContext(manifest.collection.name, chunk.key);
  const plain = Buffer.from(store.openBlob ? await store.openBlob(context, stored, packKey) : stored);
  plain[plain.length >> 1]! ^= 0x20;
  (store.sealBlob ? await store.sealBlob(context, plain) : plain).copy(body, chunk.offset);
  await store.put(packKey, body);
}

const MODES = [
  { mode: "plain", encrypted: false },
  { mode: "encrypted", encrypted: true },
];

/** A store (encrypted or not) holding one deduplicated backup of a small collection, and the jobs run against it. */
function backedUp(open: (typeof STORES)[number]["open"], encrypted: boolean) {
  const { store: inner, env: storeEnv } = open();
  const keyPath = keyFile();
  const store: ObjectStore = encrypted ? new EncryptedStore(inner, readKeyFile(keyPath)) : inner;
  // Lease lifetime 0: chunks a test just wrote are old enough for a prune with no grace period.
  const ctx = (backupStore: ObjectStore = store) => jobContext({ chroma, backupStore, locks: new LocalLocks(0) });
  const fixture = {
    inner,
    store,
    keyPath,
    env: testEnv({ ...storeEnv, ...(encrypted ? { VK_BACKUP_KEY_FILE: keyPath } : {}) }),
    ctx,
    source: uniqueName("faults"),
    made: undefined as unknown as BackupResult,
    before: undefined as unknown as Awaited<ReturnType<typeof snapshotOf>>,
    // Packs of a few chunks each: a backup of these small collections writes several.
    backupOf: (collection: string, backupStore: ObjectStore = store) =>
      backup.process(backup.payload.parse({ collection, dedupe: true, packBytes: PACK_BYTES }), ctx(backupStore)),
    restoreInto: (target: string, backupId: string, backupStore: ObjectStore = store) =>
      restore.process(restore.payload.parse({ collection: target, backupId }), ctx(backupStore)),
    verifyOf: (collection: string, backupId: string, backupStore: ObjectStore = store) =>
      verify.process(verify.payload.parse({ collection, backupId }), ctx(backupStore)),
    /** Restore and verify of the backup both fail with one line matching `pattern`; the restore leaves nothing in Chroma. */
    async expectRefused(pattern: RegExp, exitCode?: number, backupStore: ObjectStore = store): Promise<void> {
      const target = uniqueName("faults_never");
      expectOneLineFailure(await failureOf(fixture.restoreInto(target, fixture.made.backupId, backupStore)), pattern, exitCode);
      expect(await leftBehind(target)).toEqual([]);
      expectOneLineFailure(await failureOf(fixture.verifyOf(fixture.source, fixture.made.backupId, backupStore)), pattern, exitCode);
    },
    /** The backup restores equal to the collection it was taken of: what a test broke, it put back. */
    async expectWhole(backupStore: ObjectStore = store): Promise<void> {
      const target = uniqueName("faults_repaired");
      await fixture.restoreInto(target, fixture.made.backupId, backupStore);
      expect((await snapshotOf(chroma, target)).rows).toEqual(fixture.before.rows);
    },
  };
  beforeAll(async () => {
    await seed(fixture.source);
    fixture.made = await fixture.backupOf(fixture.source);
    fixture.before = await snapshotOf(chroma, fixture.source);
  }, 60_000);
  return fixture;
}

describe.each(STORES)("faults of deduplicated backups on $name", ({ open }) => {
  describe.each(MODES)("$mode", ({ encrypted }) => {
    const f = backedUp(open, encrypted);

    it("a missing chunk, a chunk whose content does not match its name and a truncated manifest each fail restore and verify naming the object", async () => {
      const objects = await dataObjects(f.inner, f.source);
      expect(objects.length).toBeGreaterThan(2);
      const victim = objects[1]!;
      const original = await f.inner.get(victim);

      await f.inner.delete([victim]);
      await f.expectRefused(new RegExp(`${baseName(victim)}.* is missing`));
      await f.inner.put(victim, original);

      await alterChunk(f.store, await readManifest(f.store, f.source, f.made.backupId), victim);
      await f.expectRefused(new RegExp(`${baseName(victim)}.* fails its SHA-256 check`));
      await f.inner.put(victim, original);

      const manifestKey = backupFolder(f.source, f.made.backupId) + MANIFEST;
      const manifest = await f.inner.get(manifestKey);
      await f.inner.put(manifestKey, manifest.subarray(0, manifest.length - 40));
      await f.expectRefused(encrypted ? new RegExp(`${manifestKey} in .* fails authentication`) : new RegExp(`manifest of backup ${f.made.backupId} is truncated`));
      await f.inner.put(manifestKey, manifest);

      await f.expectWhole();
    });

    it("backups of two collections sharing one store at once never interfere; pruning one leaves the other whole", async () => {
      // Two processes on a store nothing was written to yet (so, encrypted, both set up its header).
      const { store: shared } = open();
      const process = () => (encrypted ? new EncryptedStore(shared, readKeyFile(f.keyPath)) : shared);
      const [storeA, storeB] = [process(), process()];
      const [a, b] = [uniqueName("faults_a"), uniqueName("faults_b")];
      await Promise.all([seed(a, 30), seed(b, 30)]);
      const both = async () => {
        const [ra, rb] = await Promise.all([f.backupOf(a, storeA), f.backupOf(b, storeB)]);
        return { a: { result: ra, snapshot: await snapshotOf(chroma, a) }, b: { result: rb, snapshot: await snapshotOf(chroma, b) } };
      };
      const first = await both();
      // Every record of a: no pack of its first backup holds a chunk its second one lists.
      const changed = Array.from({ length: 30 }, (_, i) => `rec-${i}`);
      await (await chroma.openCollection(a)).update({ ids: changed, embeddings: vectors(30, 8, 3), documents: changed.map((id) => `${id} changed`) });
      await (await chroma.openCollection(b)).delete({ ids: ["rec-7"] });
      const second = await both();

      // Prune of a (its first backup, and the chunks only that one listed) while b backs up again.
      const bObjects = await dataObjects(shared, b);
      const [pruned, third] = await Promise.all([
        prune.process(prune.payload.parse({ collection: a, keep: { last: 1 }, leftoverGraceHours: 0 }), f.ctx(storeA)),
        f.backupOf(b, storeB),
      ]);
      expect(pruned.deleted).toEqual([first.a.result.backupId]);
      expect(pruned.chunksSwept).toBeGreaterThan(0);
      expect(await dataObjects(shared, b)).toEqual(expect.arrayContaining(bObjects));

      const reader = process();
      for (const { result, snapshot } of [second.a, first.b, second.b, { result: third, snapshot: second.b.snapshot }]) {
        const target = uniqueName("faults_shared_back");
        await f.restoreInto(target, result.backupId, reader);
        expect((await snapshotOf(chroma, target)).rows).toEqual(snapshot.rows);
      }
    }, 60_000);
  });

  describe("encrypted", () => {
    const f = backedUp(open, true);

    it("a tampered chunk or repository header, a wrong key or none fail restore and verify naming the object or key id", async () => {
      const header = await f.inner.get(HEADER_KEY);
      const keyId = (JSON.parse(header.toString("utf8")) as { keyId: string }).keyId;

      const victim = (await dataObjects(f.inner, f.source))[0]!;
      const original = await f.inner.get(victim);
      const flipped = Buffer.from(original);
      flipped[flipped.length - 20]! ^= 1;
      await f.inner.put(victim, flipped);
      await f.expectRefused(new RegExp(`${victim} in .* fails authentication`));
      await f.inner.put(victim, original);

      // Each seen by a fresh process (one that has not read the header yet).
      const fresh = () => new EncryptedStore(f.inner, readKeyFile(f.keyPath));
      const named = HEADER_KEY.replaceAll(".", "\\.");
      const fields = JSON.parse(header.toString("utf8")) as { kdf: Record<string, unknown> };
      const withKdf = (kdf: Record<string, unknown>) => Buffer.from(JSON.stringify({ ...fields, kdf: { ...fields.kdf, ...kdf } }));
      const tampered: [Buffer, RegExp][] = [
        [header.subarray(0, header.length - 10), new RegExp(`${named} in .* is not JSON`)],
        [withKdf({ salt: randomBytes(16).toString("base64") }), new RegExp(`encrypted with key ${keyId}, .*${named} was altered`)],
        [withKdf({ M: 1 }), new RegExp(`${named} in .* is invalid at kdf`)],
        // Memory scrypt would need: refused before it is asked for.
        [withKdf({ N: 2 ** 20, r: 32 }), new RegExp(`${named} in .* is invalid at kdf`)],
      ];
      for (const [body, pattern] of tampered) {
        await f.inner.put(HEADER_KEY, body);
        await f.expectRefused(pattern, undefined, fresh());
      }
      await f.inner.delete([HEADER_KEY]);
      await f.expectRefused(new RegExp(`${named} is missing from .* encrypted with key ${keyId}`), 1, fresh());
      await f.inner.put(HEADER_KEY, header);

      await f.expectRefused(new RegExp(`encrypted with key ${keyId}, but VK_BACKUP_KEY_FILE holds key [0-9a-f]{16}`), 2, new EncryptedStore(f.inner, readKeyFile(keyFile())));
      await f.expectRefused(new RegExp(`encrypted with key ${keyId}: set VK_BACKUP_KEY_FILE`), 2, f.inner);

      await f.expectWhole(fresh());
    });
  });
});

// A CLI process takes seconds to start on a loaded machine: the CLI cases are few, on one store each.
describe.each([
  // Mid-way on file://, where a write cut short leaves a temp file; before the manifest on S3, every chunk written.
  { ...STORES[0]!, encrypted: false, point: "backup:after-first-page" },
  { ...STORES[1]!, encrypted: true, point: "backup:before-manifest" },
])("from the command line on $name, encrypted: $encrypted", ({ open, encrypted, point }) => {
  const f = backedUp(open, encrypted);

  // dedupe-cli.test.ts covers the CLI's restore of a backup missing a chunk, encryption.test.ts `backups list` without the key.
  it("`backups verify` prints one line and exits non-zero for a missing chunk; encrypted, so does restore without the key and verify with another", async () => {
    const victim = (await dataObjects(f.inner, f.source)).at(-1)!;
    const original = await f.inner.get(victim);
    await f.inner.delete([victim]);
    const target = uniqueName("faults_cli_never");
    const { VK_BACKUP_KEY_FILE: _key, ...withoutKey } = f.env;
    const keyId = encrypted ? (JSON.parse((await f.inner.get(HEADER_KEY)).toString("utf8")) as { keyId: string }).keyId : "";
    const runs: [Promise<CliResult>, number, RegExp][] = encrypted
      ? [
          [runCli(["restore", f.made.backupId, "--to", target], withoutKey), 2, new RegExp(`encrypted with key ${keyId}: set VK_BACKUP_KEY_FILE`)],
          [runCli(["backups", "verify", f.made.backupId], { ...f.env, VK_BACKUP_KEY_FILE: keyFile() }), 2, new RegExp(`encrypted with key ${keyId}, but`)],
        ]
      : [[runCli(["backups", "verify", f.made.backupId], f.env), 1, new RegExp(`^chunk [0-9a-f]{64} \\(pack ${baseName(victim)}, .*is missing`)]];
    for (const [attempt, code, pattern] of runs) {
      const run = await attempt;
      expect(run.code, run.stderr).toBe(code);
      const lines = run.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]!.replace(/^vectorkeeper: /, "")).toMatch(pattern);
    }
    expect(await leftBehind(target)).toEqual([]);
    await f.inner.put(victim, original);
  }, 60_000);

  it(`a backup killed at ${point} leaves no manifest, only packs prune collects after the grace period; the next backup restores bit for bit`, async () => {
    const name = uniqueName("faults_killed");
    await seed(name, 120);
    const child = spawnCli(["run", "backup", "--collection", name, "--dedupe", "--page-size", "60", "--pack-bytes", String(PACK_BYTES)], {
      ...f.env,
      VK_FAILPOINT: point,
    });
    const done = collect(child);
    await new Promise<void>((resolve, reject) => {
      let err = "";
      child.stderr?.on("data", (d: Buffer) => (err += d.toString()).includes(`failpoint ${point} reached`) && resolve());
      child.once("exit", () => reject(new Error(`backup exited before its failpoint: ${err}`)));
    });
    // Stopped there, the run's pack uploads still finish: killed once one has (a kill any sooner leaves no pack to collect).
    for (let waited = 0; (await dataObjects(f.inner, name)).length === 0 && waited < 10_000; waited += 50) await sleep(50);
    child.kill("SIGKILL");
    expect((await done).signal).toBe("SIGKILL");

    const left = await dataObjects(f.inner, name);
    expect(left.length).toBeGreaterThan(0);
    const manifests: string[] = [];
    for await (const object of f.inner.list(`${name}/`)) if (object.key.endsWith(`/${MANIFEST}`)) manifests.push(object.key);
    expect(manifests).toEqual([]);

    // Changed since: some of the killed run's chunks are no longer needed by any backup.
    const collection = await chroma.openCollection(name);
    await collection.update({ ids: ["rec-3", "rec-40"], embeddings: vectors(2, 8, 5), documents: ["changed", "changed too"] });
    // No manifest lists the killed run's packs, so the next backup stores its chunks again (in new packs).
    const next = await f.backupOf(name);
    expect(next.records).toBe(120);
    const listed = new Set((await readManifest(f.store, name, next.backupId)).packs!.map((p) => p.name));
    const orphans = left.filter((key) => !listed.has(baseName(key)));
    expect(orphans.length).toBeGreaterThan(0);

    // Within the grace period nothing goes; after it, exactly the chunks no manifest lists.
    const keep = { collection: name, keep: { last: 5 } };
    const young = await prune.process(prune.payload.parse({ ...keep, leftoverGraceHours: 1 }), f.ctx());
    expect(young).toMatchObject({ chunksSwept: 0, chunksYoung: orphans.length });
    expect(await dataObjects(f.inner, name)).toEqual(expect.arrayContaining(left));
    const swept = await prune.process(prune.payload.parse({ ...keep, leftoverGraceHours: 0 }), f.ctx());
    expect(swept).toMatchObject({ chunksSwept: orphans.length, chunksYoung: 0 });
    expect((await dataObjects(f.inner, name)).map(baseName).sort()).toEqual([...listed].sort());
    expect(await f.inner.collectUnfinished(`${name}/`, new Date(), true)).toEqual([]);

    const target = uniqueName("faults_killed_back");
    await f.restoreInto(target, next.backupId);
    expect((await snapshotOf(chroma, target)).rows).toEqual((await snapshotOf(chroma, name)).rows);
    expect(await f.verifyOf(name, next.backupId)).toMatchObject({ recordsChecked: 120 });
  }, 60_000);
});
