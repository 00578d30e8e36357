import { describe, expect, it } from "vitest";
import { archive } from "../src/jobs/archive.js";
import { expire } from "../src/jobs/expire.js";
import { lint } from "../src/jobs/lint.js";
import { restore } from "../src/jobs/restore.js";
import { completeBackups } from "../src/storage/backup-format/backup-catalog.js";
import { parseScheduleYaml } from "../src/scheduling/schedule-file.js";
import { documentId, withLifecycle } from "../src/index.js";
import { expectSameRows, snapshotOf } from "./helpers/backup-fixtures.js";
import { cliKilledAt, runCli } from "./helpers/cli.js";
import { chromaStore, jobContext, testEnv, uniqueName, vectors } from "./helpers/services.js";

const chroma = chromaStore();
const DAY = 86_400_000;

/** Adds records one shape at a time (the client refuses mixed batches). */
async function add(name: string, rows: { id: string; metadata?: Record<string, string | number>; document?: string; embedding?: number[] }[]) {
  const collection = (await chroma.exists(name))
    ? await chroma.openCollection(name)
    : await chroma.client.createCollection({ name, embeddingFunction: null, configuration: { hnsw: { space: "cosine" } } });
  const embeddings = vectors(rows.length, 8, rows.length + name.length);
  for (const [i, row] of rows.entries()) {
    await collection.add({
      ids: [row.id],
      embeddings: [row.embedding ?? embeddings[i]!],
      ...(row.metadata ? { metadatas: [row.metadata] } : {}),
      ...(row.document !== undefined ? { documents: [row.document] } : {}),
    });
  }
  return collection;
}

const ids = async (name: string) => (await snapshotOf(chroma, name)).rows.map((r) => r.id);

describe("expire", () => {
  it("deletes exactly the expired records; leaves missing and string-typed fields alone; dry run changes nothing", async () => {
    const name = uniqueName("expire");
    const now = Date.now();
    await add(name, [
      ...[1, 2, 3].map((i) => ({ id: `expired-${i}`, metadata: { _expires_at: now - i * DAY } })),
      ...[1, 2].map((i) => ({ id: `alive-${i}`, metadata: { _expires_at: now + i * DAY } })),
      { id: "no-field", metadata: { topic: "x" } },
      { id: "no-metadata" },
      { id: "iso-1", metadata: { _expires_at: "2020-01-01T00:00:00Z" } },
      { id: "iso-2", metadata: { _expires_at: "2021-06-01T00:00:00Z" } },
    ]);
    const before = await snapshotOf(chroma, name);

    const dry = await expire.process(expire.payload.parse({ collection: name, dryRun: true, batchSize: 2 }), jobContext());
    expect(dry).toMatchObject({ deleted: 3, dryRun: true, notNumeric: { count: 2, sampleIds: ["iso-1", "iso-2"] } });
    expect(await snapshotOf(chroma, name)).toEqual(before);

    const real = await expire.process(expire.payload.parse({ collection: name, batchSize: 2 }), jobContext());
    expect(real).toMatchObject({ collection: name, deleted: 3, dryRun: false });
    expect(await ids(name)).toEqual(["alive-1", "alive-2", "iso-1", "iso-2", "no-field", "no-metadata"]);
    expect((await expire.process(expire.payload.parse({ collection: name }), jobContext())).deleted).toBe(0);
  });

  it("honours another field name, from the command line", async () => {
    const name = uniqueName("expire_ttl");
    await add(name, [
      { id: "gone", metadata: { ttl: Date.now() - 1000, _expires_at: Date.now() + DAY } },
      { id: "kept", metadata: { ttl: Date.now() + DAY, _expires_at: Date.now() - DAY } },
    ]);
    const result = await runCli(["run", "expire", "--collection", name, "--field", "ttl", "--json"], testEnv());
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toMatchObject({ collection: name, deleted: 1, field: "ttl" });
    expect(await ids(name)).toEqual(["kept"]);
  });
});

describe("archive", () => {
  const seed = async (name: string) => {
    const now = Date.now();
    await add(name, [
      ...Array.from({ length: 25 }, (_, i) => ({ id: `old-${i}`, document: `old ${i}`, metadata: { _created_at: now - (40 + i) * DAY, n: i } })),
      ...Array.from({ length: 5 }, (_, i) => ({ id: `new-${i}`, metadata: { _created_at: now - i * DAY } })),
      { id: "undated", document: "no dates" },
    ]);
    return snapshotOf(chroma, name);
  };

  it("survives SIGKILL between the copy and the delete of a batch: a re-run leaves every record exactly once", async () => {
    const name = uniqueName("archive_src");
    const original = await seed(name);
    const target = `${name}_archive`;
    const args = ["run", "archive", "--collection", name, "--older-than-days", "30", "--batch-size", "10"];
    await cliKilledAt(args, testEnv(), "archive:after-copy");

    // Killed after the first batch was copied and confirmed, before it was deleted: in both places, nothing lost.
    const sourceIds = await ids(name);
    const targetIds = await ids(target);
    expect(targetIds).toHaveLength(10);
    expect(targetIds.every((id) => sourceIds.includes(id))).toBe(true);

    const rerun = await runCli([...args, "--json"], testEnv());
    expect(rerun.code).toBe(0);
    expect(JSON.parse(rerun.stdout)).toMatchObject({ collection: name, archived: 25, target });

    const [source, archived] = await Promise.all([snapshotOf(chroma, name), snapshotOf(chroma, target)]);
    expect(source.rows.map((r) => r.id).sort()).toEqual([...Array.from({ length: 5 }, (_, i) => `new-${i}`), "undated"].sort());
    expectSameRows([...source.rows, ...archived.rows].sort((a, b) => (a.id < b.id ? -1 : 1)), original.rows);
    expect(archived.hnsw?.space).toBe("cosine");
  });

  it("dry run counts and changes nothing", async () => {
    const name = uniqueName("archive_dry");
    const original = await seed(name);
    const result = await archive.process(archive.payload.parse({ collection: name, olderThanDays: 30, dryRun: true }), jobContext());
    expect(result).toMatchObject({ archived: 25, dryRun: true });
    expect(await snapshotOf(chroma, name)).toEqual(original);
    expect(await chroma.exists(`${name}_archive`)).toBe(false);
  });

  it("archives to the object store as a restorable, never-pruned archive", async () => {
    const name = uniqueName("archive_cold");
    const original = await seed(name);
    const ctx = jobContext();
    const result = await archive.process(archive.payload.parse({ collection: name, olderThanDays: 30, to: "object-store" }), ctx);
    expect(result.archived).toBe(25);
    expect(result.target).toMatch(/^object-store:\d{8}T/);
    expect((await ids(name)).sort()).toEqual([...Array.from({ length: 5 }, (_, i) => `new-${i}`), "undated"].sort());

    const backupId = result.target.split(":")[1]!;
    const listed = await completeBackups(ctx.backupStore, name);
    expect(listed.backups.map((b) => [b.backupId, b.manifest.purpose])).toEqual([[backupId, "archive"]]);

    const back = uniqueName("archive_back");
    const restored = await restore.process(restore.payload.parse({ collection: back, backupId }), ctx);
    expect(restored.records).toBe(25);
    expectSameRows((await snapshotOf(chroma, back)).rows, original.rows.filter((r) => r.id.startsWith("old-")));
  });
});

describe("lint", () => {
  it("finds bad names, missing and mistyped lifecycle fields and planted duplicates, and changes nothing", async () => {
    const name = uniqueName("Bad-Name");
    const shared = vectors(1, 8, 99)[0]!;
    const now = Date.now();
    const ok = { _created_at: now, _expires_at: now + DAY };
    await add(name, [
      { id: "a", document: "same text", metadata: ok },
      { id: "b", document: "same text", metadata: ok },
      { id: "c", document: "unique", metadata: ok, embedding: shared },
      { id: "d", document: "also unique", metadata: ok, embedding: shared },
      { id: "e", document: "undated" },
      { id: "f", document: "iso", metadata: { _created_at: "2024-01-01", _expires_at: now } },
    ]);
    const before = await snapshotOf(chroma, name);
    const report = await lint.process(lint.payload.parse({ collection: name, pageSize: 4 }), jobContext());
    expect(report).toMatchObject({
      records: 6,
      name: { ok: false },
      missing: { _created_at: { count: 1, sampleIds: ["e"] }, _expires_at: { count: 1, sampleIds: ["e"] } },
      wrongType: { _created_at: { count: 1, sampleIds: ["f"] }, _expires_at: { count: 0 } },
      duplicateDocuments: { count: 1, samples: [["a", "b"]] },
      duplicateEmbeddings: { count: 1, samples: [["c", "d"]] },
    });
    expect(report.problems).toBe(6);
    expect(await snapshotOf(chroma, name)).toEqual(before);
  });

  it("runs for every collection with --all, as one JSON object", async () => {
    const name = uniqueName("lint_all");
    await add(name, [{ id: "only", document: "text" }]);
    // vectorkeeper's own collections (here a reindex's kept original) are not the operator's to lint.
    await add(`${name}__vkold_1`, [{ id: "kept", document: "text" }]);
    const result = await runCli(["run", "lint", "--all", "--json"], testEnv());
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout) as { kind: string; collections: { collection: string; records: number }[] };
    expect(report.kind).toBe("lint");
    expect(report.collections.find((c) => c.collection === name)).toMatchObject({ records: 1 });
    expect(report.collections.map((c) => c.collection)).not.toContain(`${name}__vkold_1`);
    const both = await runCli(["run", "lint", "--all", "--collection", name], testEnv());
    expect(both.code).toBe(2);
    expect(both.stderr).toContain("give --collection or --all, not both");
  });

  it("passes a well-named, clean collection", async () => {
    const name = `support_articles_v${Date.now() % 100000}`;
    const now = Date.now();
    await add(name, [{ id: "x", document: "one", metadata: { _created_at: now, _expires_at: now + DAY } }]);
    const report = await lint.process(lint.payload.parse({ collection: name }), jobContext());
    expect(report).toMatchObject({ name: { ok: true }, problems: 0 });
    await chroma.deleteCollection(name);
  });
});

describe("helpers for writing applications", () => {
  it("withLifecycle stamps numeric epoch-millisecond fields", () => {
    const stamped = withLifecycle({ source: "faq.md" }, { retentionDays: 30, now: 1_700_000_000_000 });
    expect(stamped).toEqual({ source: "faq.md", _created_at: 1_700_000_000_000, _expires_at: 1_700_000_000_000 + 30 * DAY });
    expect(() => withLifecycle({}, { retentionDays: 0 })).toThrow(/retentionDays/);
  });

  it("documentId is deterministic, distinct and sorts by source then chunk", () => {
    const id = documentId("docs/faq.md", 3, "v2");
    expect(id).toMatch(/^v2_docs-faq\.md_00003_[0-9a-f]{8}$/);
    expect(documentId("docs/faq.md", 3, "v2")).toBe(id);
    expect(documentId("docs/faq.md", 4, "v2")).not.toBe(id);
    expect(documentId("docs:faq.md", 3, "v2")).not.toBe(id);
    const sorted = [documentId("b", 1, "v1"), documentId("a", 10, "v1"), documentId("a", 2, "v1")].sort();
    expect(sorted.map((s) => s.split("_").slice(1, 3).join("_"))).toEqual(["a_00002", "a_00010", "b_00001"]);
  });

  it("schedule entries take the lifecycle kinds' options and reject missing ones", () => {
    const schedule = parseScheduleYaml(
      `jobs:\n  - { kind: expire, cron: "*/15 * * * *", collections: ["*"] }\n  - { kind: archive, cron: "0 4 * * 0", collections: ["user_content_v1"], olderThanDays: 180, to: "{name}_archive" }\n`,
      "t",
    );
    expect(schedule.jobs).toHaveLength(2);
    expect(() => parseScheduleYaml(`jobs: [{ kind: archive, cron: "0 4 * * 0", collections: ["x_y_v1"] }]`, "t")).toThrow(/jobs\[0\]\.olderThanDays/);
  });
});
