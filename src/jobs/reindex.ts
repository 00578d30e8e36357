import { randomBytes } from "node:crypto";
import { performance } from "node:perf_hooks";
import { setTimeout } from "node:timers/promises";
import type { Collection, UpdateCollectionConfiguration } from "chromadb";
import { z } from "zod";
import { ConfigError } from "../config/config-error.js";
import { DEFAULTS } from "../config/defaults.js";
import { ExactSearch, type DistanceSpace, type Query } from "../recall/exact-neighbours.js";
import { indexRecall, sampleQueries, spaceOf, type RecallFigures } from "../recall/index-recall.js";
import type { ChromaStore, SavedCollection } from "../storage/chroma/client.js";
import { ChromaRequestError } from "../storage/chroma/rest.js";
import { CollectionSync, type SyncPassOptions } from "../storage/chroma/collection-sync.js";
import {
  changesOf,
  currentIndex,
  flagOfSetting,
  indexSettingsFields,
  modifyConfiguration,
  settingsProblem,
  withSettings,
  type CurrentIndex,
  type IndexSettings,
  type SettingName,
} from "../storage/chroma/index-settings.js";
import { failpoint } from "./failpoints.js";
import { BUILD, keptCollections, recoverLeftovers, swapIn } from "./reindex-swap.js";
import { dropKept, forgetReconcile, recordReconcile, settleKept, type KeptBack, type KeptRun, type KeptWrites } from "./reindex-kept.js";
import { holdLease, type HeldLease } from "./lease.js";
import { defineJob, type JobContext } from "./job-context.js";
import { alertAfterFailures, collectionName } from "./payload-fields.js";
import { pacingFields, startPacing } from "./pacing-fields.js";
import type { Pacer, PacingReport } from "../storage/chroma/pacing.js";
import { recallFields } from "./recall-fields.js";
import { warm, warmPayload, type WarmResult } from "./warm.js";

const d = DEFAULTS.reindex;

export const reindexPayload = z
  .object({
    collection: collectionName,
    alertAfterFailures,
    ...indexSettingsFields,
    /** Build a new index even when no fixed setting changes (with the settings it has, or the in-place ones given). */
    rebuild: z.boolean().default(false),
    /** Put back the collection the last reindex (or rollback) of this one replaced, with the writes made since. */
    rollback: z.boolean().default(false),
    /** Delete the replaced collection once this run's swap is done; without a rebuild or rollback, those kept now. */
    dropOld: z.boolean().default(false),
    /**
     * Drop (or roll back to) a kept collection even when what was written to it after its reconcile cannot be carried
     * into the live collection (it is given up, and counted as `keptWrites.discarded`); without it such a collection
     * stays, and the run says why.
     */
    dropChanged: z.boolean().default(false),
    /** Replaced collections older than this are deleted by the next reindex of the collection. */
    keepOldHours: z.number().min(0).max(87_600).default(d.keepOldHours),
    /** Catch-up passes before the swap (and reconcile passes after it) at most. */
    maxPasses: z.number().int().min(1).max(100).default(d.maxPasses),
    /**
     * Records per write, at most the server's maximum batch size (the default, as for restore); smaller writes each
     * take less time on a loaded server. A write never carries more than the request-body cap either way.
     */
    batchSize: z.number().int().min(1).max(100_000).optional(),
    /** Leave out measuring recall before and after (the copy then skips exact search). */
    skipRecall: z.boolean().default(false),
    k: recallFields.k,
    queries: recallFields.queries,
    ...pacingFields,
  })
  .strict();

type ReindexPayload = z.output<typeof reindexPayload>;

/** Recall of one index, without the per-query detail. */
export type IndexRecall = Omit<RecallFigures, "perQuery">;

export interface ReindexResult {
  collection: string;
  /** rebuilt: a new index swapped in; modified: settings changed in place; rolledBack; droppedOld; unchanged. */
  action: "rebuilt" | "modified" | "rolledBack" | "droppedOld" | "unchanged";
  /** Index settings as the server reports them, before and after. */
  before: Partial<Record<SettingName, unknown>>;
  after: Partial<Record<SettingName, unknown>>;
  /** Records under the name at the end. */
  records: number;
  /** Records written by the copy (rebuild), or by the first sync of the collection put back (rollback). */
  copied: number;
  /** Catch-up passes before the swap: what each carried over. */
  passes: { written: number; deleted: number }[];
  /** Reconcile passes after the swap: writes made meanwhile to the replaced collection, carried into the new one. */
  reconciled: { passes: number; written: number; deleted: number } | null;
  /** recall@k of the old and the new index over the same records and queries, measured just before the swap. */
  recallBefore: IndexRecall | null;
  recallAfter: IndexRecall | null;
  k: number;
  /** The new index's warm-up before the swap. */
  warm: WarmResult | null;
  /** The replaced collection, kept aside for --rollback (null when none, or dropped). */
  keptAs: string | null;
  /** Replaced collections deleted (--drop-old, or past --keep-old-hours). */
  dropped: string[];
  /**
   * Writes made to kept collections after their reconcile (by clients holding their ids), carried into the live
   * collection before each was dropped or rolled back to.
   */
  keptWrites: KeptWrites;
  /**
   * Kept collections chosen to be dropped (--drop-old, or past their retention) left in place: what was written to
   * them could not be carried over, or Chroma failed meanwhile; each with its reason.
   */
  keptBack: KeptBack[];
  /**
   * The reasons of those of `keptBack` an explicit --drop-old asked for, as one line (null when none): the CLI prints
   * it and exits 2 after printing the result, which still says what was dropped and carried over.
   */
  refused: string | null;
  durationMs: number;
  /**
   * Time spent in each step of a rebuild or rollback, in ms (prepare: creating the build and sampling queries; copy;
   * catchUp; recall; warm; swap; reconcile; finish: retention and the final count), so an operator sees where a slow
   * run went.
   */
  phasesMs: Partial<Record<Phase, number>>;
  /** How the copy and the passes kept to the rate limit or spared the collection's queries (rebuild, rollback). */
  pacing?: PacingReport;
}

/** The steps of a rebuild or rollback that `phasesMs` times. */
export type Phase = "prepare" | "copy" | "catchUp" | "recall" | "warm" | "swap" | "reconcile" | "finish";

/** What each way of reindexing tells; the rest of the result is the same for all. */
type Outcome = Omit<ReindexResult, "collection" | "action" | "before" | "after" | "dropped" | "keptWrites" | "keptBack" | "refused" | "durationMs" | "pacing" | "phasesMs">;

const settingsOf = (payload: ReindexPayload): IndexSettings =>
  Object.fromEntries(Object.keys(indexSettingsFields).flatMap((key) => (payload[key as SettingName] === undefined ? [] : [[key, payload[key as SettingName]]])));

/** Exact search over the copy's pages for the recall of the old index (its space) and the new one (its space). */
interface RecallTruth {
  queries: Query[];
  before: ExactSearch;
  after: ExactSearch;
  spaces: { before: DistanceSpace; after: DistanceSpace };
}

function recallTruth(queries: Query[], k: number, before: DistanceSpace, after: DistanceSpace): RecallTruth | undefined {
  if (queries.length === 0) return undefined;
  const search = new ExactSearch(queries, k, before);
  return { queries, before: search, after: after === before ? search : new ExactSearch(queries, k, after), spaces: { before, after } };
}

const withoutDetail = ({ perQuery: _perQuery, ...figures }: RecallFigures): IndexRecall => figures;

/** What a run shares between its steps. */
interface Run {
  ctx: JobContext;
  payload: ReindexPayload;
  signal: AbortSignal;
  leases: HeldLease[];
  /** The pace of the copy and the passes (set for a rebuild or a rollback). */
  pacer?: Pacer | undefined;
  phasesMs: Partial<Record<Phase, number>>;
  /** Writes found in kept collections before they were dropped or rolled back to, over the run. */
  keptWrites: KeptWrites;
}

/** Runs one step, adding its time to `phasesMs`. */
async function timed<T>(run: Run, phase: Phase, step: () => Promise<T>): Promise<T> {
  const started = performance.now();
  try {
    return await step();
  } finally {
    run.phasesMs[phase] = Math.round((run.phasesMs[phase] ?? 0) + performance.now() - started);
  }
}

const passOptions = (run: Run, mode: SyncPassOptions["mode"]): SyncPassOptions => ({
  mode,
  pageSize: d.pageSize,
  readAhead: d.readAhead,
  signal: run.signal,
  pacer: run.pacer,
});

/** Catch-up passes until one finds nothing, at most `maxPasses`. */
async function catchUp(run: Run, sync: CollectionSync, what: string): Promise<{ written: number; deleted: number }[]> {
  const passes: { written: number; deleted: number }[] = [];
  while (passes.length < run.payload.maxPasses) {
    const { written, deleted } = await sync.pass(passOptions(run, "upsert"));
    passes.push({ written, deleted });
    await run.ctx.progress({ done: passes.length, total: run.payload.maxPasses, unit: `${what} passes` });
    await failpoint("reindex:pass");
    if (written + deleted === 0) break;
  }
  return passes;
}

/** Warms the replacement (so its first users do not meet a cold index) and confirms every lease before a swap. */
async function readyToSwap(run: Run, replacement: Collection): Promise<WarmResult> {
  const warmed = await warm.process(warmPayload.parse({ collection: replacement.name }), { ...run.ctx, signal: run.signal });
  for (const lease of run.leases) await lease.confirm();
  return warmed;
}

/**
 * Carries into the swapped-in collection every write made to the replaced one since the last pass (clients that
 * opened it before the swap keep writing there), until a pass finds nothing; that pass starts at least
 * `reconcileGraceMs` after the swap, so a write sent to the replaced collection just before the swap has landed by
 * then. At most `maxPasses` passes that find something.
 */
async function reconcile(run: Run, sync: CollectionSync, name: string): Promise<NonNullable<ReindexResult["reconciled"]>> {
  const { ctx } = run;
  const graceEnds = performance.now() + d.reconcileGraceMs;
  ctx.logger.info({ collection: name }, "swapped in; reconciling writes made to the replaced collection");
  await ctx.progress({ done: 0, unit: "reconcile passes" });
  const reconciled = { passes: 0, written: 0, deleted: 0 };
  let busy = 0;
  for (;;) {
    const early = graceEnds - performance.now();
    if (early > 0) await setTimeout(early, undefined, { signal: run.signal });
    const { written, deleted } = await sync.pass(passOptions(run, "upsert"));
    reconciled.passes++;
    reconciled.written += written;
    reconciled.deleted += deleted;
    await ctx.progress({ done: reconciled.passes, unit: "reconcile passes" });
    if (written + deleted === 0 || ++busy >= run.payload.maxPasses) break;
  }
  return reconciled;
}

/** What settling kept collections of the run's collection needs. */
const keptRun = async (run: Run): Promise<KeptRun> => ({
  chroma: run.ctx.chroma,
  logger: run.ctx.logger,
  name: run.payload.collection,
  limits: await run.ctx.chroma.writeLimits(run.payload.batchSize),
  pass: passOptions(run, "upsert"),
  force: run.payload.dropChanged,
  writes: run.keptWrites,
});

/**
 * Deletes the collection this run set aside with --drop-old, and those past their retention either way, each once the
 * writes made to it since its reconcile are carried over; one where that cannot be done stays (`keptBack`).
 */
async function finishKept(run: Run, name: string, keptAs: string | null): Promise<{ keptAs: string | null; dropped: string[]; keptBack: KeptBack[] }> {
  const cutoff = Date.now() - run.payload.keepOldHours * 3_600_000;
  const chosen = (kept: { name: string; keptAt: number }) => (kept.name === keptAs ? run.payload.dropOld : kept.keptAt < cutoff);
  let k: KeptRun;
  try {
    k = await keptRun(run);
  } catch (error) {
    // After a swap: a failed job would be retried, building again or undoing a rollback (dropKept says more).
    const reason = `reindex: could not ask Chroma for its write limits (${error instanceof Error ? error.message.split("\n")[0] : String(error)}); no kept collection was dropped, the next reindex of ${name} tries again`;
    run.ctx.logger.error({ collection: name, err: error }, reason);
    return { keptAs, dropped: [], keptBack: [{ kept: `${name}__vkreindex_old_*`, reason }] };
  }
  const { dropped, keptBack } = await dropKept(k, chosen);
  return { keptAs: keptAs && dropped.includes(keptAs) ? null : keptAs, dropped, keptBack };
}

/** The creation of the new collection, with Chroma's refusal of its settings as one line. */
async function createBuild(chroma: ChromaStore, name: string, saved: SavedCollection): Promise<Collection> {
  try {
    return await chroma.createLike(name, saved);
  } catch (error) {
    const status = error instanceof ChromaRequestError ? error.status : undefined;
    const refused = (status !== undefined && status < 500) || (error instanceof Error && /ChromaClientError|ChromaValueError/.test(error.name));
    if (refused) throw new ConfigError(`Chroma refused the new index settings: ${(error as Error).message.split("\n")[0]}`);
    throw error;
  }
}

/** Refuses, by flag, a setting the new collection does not report as asked (Chroma ignored it). */
function checkApplied(wanted: IndexSettings, reported: CurrentIndex, what: string): void {
  for (const name of Object.keys(wanted) as SettingName[]) {
    const value = reported.values[name];
    if (value !== undefined && value !== wanted[name]) {
      throw new Error(`${flagOfSetting(name)}: Chroma kept ${String(value)} on ${what} after it was asked for ${String(wanted[name])}`);
    }
  }
}

async function rebuild(run: Run, current: CurrentIndex, saved: SavedCollection, wanted: IndexSettings): Promise<Outcome> {
  const { ctx, payload } = run;
  const { chroma, logger } = ctx;
  const name = payload.collection;
  const source = await chroma.openCollection(name);
  const buildName = `${name}${BUILD}${randomBytes(4).toString("hex")}`;
  let swapped = false;
  let target: Collection | undefined;
  try {
    const { size, truth, sync } = await timed(run, "prepare", async () => {
      target = await createBuild(chroma, buildName, withSettings(saved, current.kind, wanted));
      checkApplied(wanted, currentIndex(await chroma.describeCollection(buildName)), buildName);
      const size = await source.count();
      const space = spaceOf(source);
      const queries = !payload.skipRecall && size > 1 ? await sampleQueries(chroma, source, payload.queries, size) : [];
      const truth = recallTruth(queries, payload.k, space, wanted.space ?? space);
      return { size, truth, sync: new CollectionSync(chroma, source, target, await chroma.writeLimits(payload.batchSize)) };
    });
    const replacement = target!;
    // The copy is Chroma's add, as a plain copy would make it; exact search rides along on the pages it reads (the
    // client has a core to spare while Chroma indexes).
    const copy = await timed(run, "copy", () =>
      sync.pass({
        ...passOptions(run, "add"),
        onPage: (page) => {
          truth?.before.add(page);
          if (truth && truth.after !== truth.before) truth.after.add(page);
        },
        onRecords: async (records) => {
          await ctx.progress({ done: records, total: size, unit: "records copied", note: run.pacer?.note });
          await failpoint("reindex:copying");
        },
      }),
    );
    const passes = await timed(run, "catchUp", () => catchUp(run, sync, "catch-up"));
    let recallBefore: IndexRecall | null = null;
    let recallAfter: IndexRecall | null = null;
    if (truth) {
      // Both indexes hold the same records now; the truth was taken from the copy's read (a record written since
      // that is nearer than the k-th counts as found, see indexRecall).
      await timed(run, "recall", async () => {
        recallBefore = withoutDetail(await indexRecall(source, truth.queries, truth.before.result(), payload.k, sync.size, truth.spaces.before, run.signal));
        recallAfter = withoutDetail(await indexRecall(replacement, truth.queries, truth.after.result(), payload.k, sync.size, truth.spaces.after, run.signal));
      });
    }
    const warmed = await timed(run, "warm", () => readyToSwap(run, replacement));
    const keptAs = await timed(run, "swap", () => swapIn(source, replacement, name, logger));
    swapped = true;
    const reconciled = await timed(run, "reconcile", async () => {
      const reconciled = await reconcile(run, sync, name);
      await recordReconcile(chroma, name, keptAs, sync, logger);
      return reconciled;
    });
    logger.info({ collection: name, records: sync.size, recallBefore, recallAfter }, "reindexed");
    return { records: await replacement.count(), copied: copy.written, passes, reconciled, recallBefore, recallAfter, k: payload.k, warm: warmed, keptAs };
  } finally {
    // Before the swap the build is only ours; after it, it holds the name.
    if (!swapped && target) await chroma.deleteCollection(buildName).catch(() => undefined);
  }
}

/**
 * Puts back the newest collection a reindex of `name` kept aside: what was written to it since its reconcile is
 * carried into the live collection first (or the rollback refused, see settleKept); then it is brought up to date with
 * the live collection (its own content read once, then passes carrying over what differs) and swapped in like a
 * rebuild; the collection it replaces is kept aside in turn, so a rollback can itself be rolled back.
 */
async function rollback(run: Run): Promise<Outcome> {
  const { ctx, payload } = run;
  const { chroma } = ctx;
  const name = payload.collection;
  const [newest] = await keptCollections(chroma, name);
  if (!newest) throw new ConfigError(`${name} has no collection kept aside by a reindex to roll back to (kept ${payload.keepOldHours} hours, --keep-old-hours)`);
  const refused = await timed(run, "prepare", async () => settleKept(await keptRun(run), newest.name));
  if (refused) throw new ConfigError(refused);
  const live = await chroma.openCollection(name);
  const kept = await chroma.openCollection(newest.name);
  const sync = new CollectionSync(chroma, live, kept, await chroma.writeLimits(payload.batchSize));
  await timed(run, "prepare", () => sync.adoptTarget(passOptions(run, "upsert")));
  const first = await timed(run, "copy", () => sync.pass(passOptions(run, "upsert")));
  const passes = [{ written: first.written, deleted: first.deleted }, ...(await timed(run, "catchUp", () => catchUp(run, sync, "catch-up")))];
  const warmed = await timed(run, "warm", () => readyToSwap(run, kept));
  const keptAs = await timed(run, "swap", () => swapIn(live, kept, name, ctx.logger));
  const reconciled = await timed(run, "reconcile", async () => {
    await forgetReconcile(chroma, name, newest.name);
    const reconciled = await reconcile(run, sync, name);
    await recordReconcile(chroma, name, keptAs, sync, ctx.logger);
    return reconciled;
  });
  return { records: await kept.count(), copied: first.written, passes, reconciled, recallBefore: null, recallAfter: null, k: payload.k, warm: warmed, keptAs };
}

const unchanged: Omit<Outcome, "k"> = { records: 0, copied: 0, passes: [], reconciled: null, recallBefore: null, recallAfter: null, warm: null, keptAs: null };

/**
 * Changes a collection's index settings. Those Chroma can change in place (ef_search, num_threads, batch_size,
 * sync_threshold, resize_factor) are set with `modify`; the fixed ones (space, max_neighbors, ef_construction), or
 * `--rebuild`, build a new collection with the old one's metadata, schema and embedding function and the new settings,
 * copy every record into it (linear reads, byte-bounded writes), catch up with the writes made meanwhile (passes over
 * ids and content hashes until one finds nothing), measure recall of both indexes, warm the new one and swap it in
 * under the name; writes made to the old collection since are then reconciled into the new one, and the old one is
 * kept aside for `--rollback` until `--drop-old` or `--keep-old-hours` (what was written to it meanwhile is carried
 * over before it goes, see reindex-kept). The live collection keeps its name, readable
 * and complete, at every step but the instant between the swap's two renames; a run killed there is put right by the
 * next reindex of the collection, which also deletes an interrupted build.
 */
export const reindex = defineJob({
  kind: "reindex",
  payload: reindexPayload,
  async process(payload, ctx): Promise<ReindexResult> {
    const started = performance.now();
    const { chroma, logger } = ctx;
    const name = payload.collection;
    const settings = settingsOf(payload);
    const named = Object.keys(settings).length > 0;
    if (payload.rollback && (named || payload.rebuild)) throw new ConfigError("--rollback puts back the replaced collection as it was: it takes no settings and no --rebuild");
    if (!named && !payload.rebuild && !payload.rollback && !payload.dropOld) {
      throw new ConfigError("reindex: name a setting to change (--space, --max-neighbors, --ef-construction, --ef-search, …), or pass --rebuild, --rollback or --drop-old");
    }
    const lease = await holdLease(ctx, `reindex:${name}`, `a reindex of ${name}`);
    const leases: HeldLease[] = [lease];
    let pacer: Pacer | undefined;
    try {
      // A restore --replace renames the collection too: the two never run at once.
      leases.push(await holdLease(ctx, `restore:${name}`, `a restore into ${name}`));
      const run: Run = { ctx, payload, leases, signal: AbortSignal.any(leases.map((l) => l.signal)), phasesMs: {}, keptWrites: { written: 0, deleted: 0, discarded: 0 } };
      await recoverLeftovers(chroma, name, logger);
      const described = await chroma.describeCollection(name);
      const current = currentIndex(described);
      const problem = settingsProblem(current, settings);
      if (problem) throw new ConfigError(problem);
      const { fixed, inPlace } = changesOf(current, settings);
      /** `settled`: what a --drop-old without a rebuild or rollback dropped and kept back (all were asked for). */
      const finish = async (action: ReindexResult["action"], outcome: Outcome, settled?: { dropped: string[]; keptBack: KeptBack[] }) => {
        const finished = performance.now();
        const kept = settled ? { keptAs: outcome.keptAs, ...settled } : await finishKept(run, name, outcome.keptAs);
        const asked = kept.keptBack.filter((k) => settled || (payload.dropOld && k.kept === outcome.keptAs));
        const after = currentIndex(await chroma.describeCollection(name)).values;
        const records = action === "rebuilt" || action === "rolledBack" ? outcome.records : await (await chroma.openCollection(name)).count();
        if (Object.keys(run.phasesMs).length > 0) run.phasesMs.finish = Math.round(performance.now() - finished);
        const result: ReindexResult = {
          collection: name,
          action,
          before: current.values,
          after,
          ...outcome,
          records,
          ...kept,
          keptWrites: run.keptWrites,
          refused: asked.length > 0 ? asked.map((k) => k.reason).join("; ") : null,
          durationMs: Math.round(performance.now() - started),
          phasesMs: run.phasesMs,
          ...(pacer ? { pacing: pacer.report() } : {}),
        };
        logger.info({ reindex: { ...result } }, `reindex: ${action}`);
        return result;
      };

      if (payload.rollback || Object.keys(fixed).length > 0 || payload.rebuild) {
        // The copy and the passes read the live collection: its users' queries are the ones to spare.
        run.pacer = pacer = await startPacing(payload, await chroma.openCollection(name), ctx);
      }
      if (payload.rollback) return await finish("rolledBack", await rollback(run));
      if (Object.keys(fixed).length > 0 || payload.rebuild) {
        return await finish("rebuilt", await rebuild(run, current, { metadata: described.metadata ?? null, configuration: described.configuration_json ?? {}, schema: described.schema ?? undefined }, { ...inPlace, ...fixed }));
      }
      if (Object.keys(inPlace).length > 0) {
        const collection = await chroma.openCollection(name);
        await collection.modify({ configuration: modifyConfiguration(current.kind, inPlace) as UpdateCollectionConfiguration });
        checkApplied(inPlace, currentIndex(await chroma.describeCollection(name)), name);
        return await finish("modified", { ...unchanged, k: payload.k });
      }
      if (payload.dropOld) {
        return await finish("droppedOld", { ...unchanged, k: payload.k }, await dropKept(await keptRun(run), () => true));
      }
      return await finish("unchanged", { ...unchanged, k: payload.k });
    } finally {
      pacer?.close();
      for (const held of leases.reverse()) await held.release();
    }
  },
});
