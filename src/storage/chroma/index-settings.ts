import { z } from "zod";
import { DISTANCE_SPACES } from "../../recall/exact-neighbours.js";
import type { CollectionAnswer } from "./rest.js";
import type { SavedCollection } from "./client.js";

/**
 * The vector-index settings a reindex can change, by the names the payload and the flags use. Bounds are Chroma's own
 * rules where it has them (its clients refuse num_threads, resize_factor ≤ 0 and batch_size > sync_threshold; its
 * server refuses a space it does not know) and hnswlib's where Chroma accepts what the index cannot build with:
 * `max_neighbors` below 2 makes hnswlib's level factor 1/ln(M) infinite, `ef_*` of 0 searches nothing, a
 * `resize_factor` of 1 or less never grows the index. Upper bounds only keep a typo from asking for terabytes.
 */
export const indexSettingsFields = {
  /** Distance measure (fixed at creation: a rebuild). */
  space: z.enum(DISTANCE_SPACES).optional(),
  /** HNSW `M` / SPANN `max_neighbors` (fixed: a rebuild). */
  maxNeighbors: z.number().int().min(2).max(2048).optional(),
  /** Candidates kept while inserting (fixed: a rebuild). */
  efConstruction: z.number().int().min(1).max(100_000).optional(),
  /** Candidates kept while searching (changed in place). */
  efSearch: z.number().int().min(1).max(100_000).optional(),
  /** HNSW threads for building and searching (changed in place). */
  numThreads: z.number().int().min(1).max(1024).optional(),
  /** HNSW `batch_size`: records held in the brute-force buffer before they are indexed (changed in place). */
  hnswBatchSize: z.number().int().min(2).max(1_000_000).optional(),
  /** HNSW `sync_threshold`: records between index writes to disk (changed in place). */
  syncThreshold: z.number().int().min(2).max(10_000_000).optional(),
  /** HNSW `resize_factor`: how much the index grows when full (changed in place). */
  resizeFactor: z.number().gt(1).max(100).optional(),
};

const settingsSchema = z.object(indexSettingsFields);
export type IndexSettings = z.output<typeof settingsSchema>;
export type SettingName = keyof IndexSettings;

/** The settings Chroma fixes when it creates a collection: changing one means building a new index. */
export const FIXED_SETTINGS: readonly SettingName[] = ["space", "maxNeighbors", "efConstruction"];

/** Each setting's key in Chroma's configuration (and schema), and in the legacy `hnsw:` metadata of 0.x collections. */
const CHROMA_KEYS: Record<SettingName, { key: string; legacy: string }> = {
  space: { key: "space", legacy: "hnsw:space" },
  maxNeighbors: { key: "max_neighbors", legacy: "hnsw:M" },
  efConstruction: { key: "ef_construction", legacy: "hnsw:construction_ef" },
  efSearch: { key: "ef_search", legacy: "hnsw:search_ef" },
  numThreads: { key: "num_threads", legacy: "hnsw:num_threads" },
  hnswBatchSize: { key: "batch_size", legacy: "hnsw:batch_size" },
  syncThreshold: { key: "sync_threshold", legacy: "hnsw:sync_threshold" },
  resizeFactor: { key: "resize_factor", legacy: "hnsw:resize_factor" },
};

/** The flag that sets a setting, for messages. */
export const flagOfSetting = (name: SettingName) => `--${name.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}`;

/** Settings a SPANN index has (Chroma's distributed servers); the rest are HNSW's. */
const SPANN_SETTINGS: readonly SettingName[] = ["space", "maxNeighbors", "efConstruction", "efSearch"];

export type IndexKind = "hnsw" | "spann";

/** What a collection's index is configured with now, as the server describes it. */
export interface CurrentIndex {
  kind: IndexKind;
  /** By setting name; absent when the server does not report it (1.0.5 reports neither num_threads nor batch_size). */
  values: Partial<Record<SettingName, unknown>>;
}

const record = (value: unknown): Record<string, unknown> | undefined =>
  typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;

/** The vector index configurations of a schema (Chroma 1.2+): the defaults and the `#embedding` key's, which is used. */
function schemaVectorConfigs(schema: Record<string, unknown> | undefined): Record<string, unknown>[] {
  const at = (root: unknown) => record(record(record(root)?.float_list)?.vector_index)?.config;
  return [at(record(schema)?.defaults), at(record(record(schema)?.keys)?.["#embedding"])].flatMap((c) => (record(c) ? [record(c)!] : []));
}

export function currentIndex(described: CollectionAnswer): CurrentIndex {
  const configuration = described.configuration_json ?? {};
  const kind: IndexKind = record(configuration.spann) ? "spann" : "hnsw";
  const fromConfig = record(configuration[kind]) ?? {};
  // The schema (1.2+) also reports num_threads and batch_size, which the configuration leaves out.
  const embedding = schemaVectorConfigs(described.schema ?? undefined).at(-1);
  const fromSchema: Record<string, unknown> = { ...(record(embedding?.[kind]) ?? {}), ...(embedding?.space !== undefined ? { space: embedding.space } : {}) };
  const values: Partial<Record<SettingName, unknown>> = {};
  for (const [name, { key, legacy }] of Object.entries(CHROMA_KEYS) as [SettingName, { key: string; legacy: string }][]) {
    const value = fromConfig[key] ?? fromSchema[key] ?? described.metadata?.[legacy];
    if (value !== undefined && value !== null) values[name] = value;
  }
  return { kind, values };
}

/**
 * Refuses settings the collection's index does not have (HNSW-only settings on a SPANN index) and combinations Chroma
 * refuses (batch_size above sync_threshold, counting the value kept), as one line naming the flag.
 */
export function settingsProblem(current: CurrentIndex, wanted: IndexSettings): string | undefined {
  const named = (Object.keys(wanted) as SettingName[]).filter((name) => wanted[name] !== undefined);
  if (current.kind === "spann") {
    const foreign = named.find((name) => !SPANN_SETTINGS.includes(name));
    if (foreign) return `${flagOfSetting(foreign)}: the collection's index is SPANN, which has no such setting (it takes --space, --max-neighbors, --ef-construction, --ef-search)`;
  }
  const batch = wanted.hnswBatchSize ?? current.values.hnswBatchSize;
  const sync = wanted.syncThreshold ?? current.values.syncThreshold;
  if (typeof batch === "number" && typeof sync === "number" && batch > sync) {
    const flag = wanted.hnswBatchSize !== undefined ? "--hnsw-batch-size" : "--sync-threshold";
    return `${flag}: Chroma requires batch_size (${batch}) at most sync_threshold (${sync})`;
  }
  return undefined;
}

/** The settings asked for that differ from what the index has, split by whether Chroma can change them in place. */
export function changesOf(current: CurrentIndex, wanted: IndexSettings): { fixed: IndexSettings; inPlace: IndexSettings } {
  const fixed: Record<string, unknown> = {};
  const inPlace: Record<string, unknown> = {};
  for (const name of Object.keys(wanted) as SettingName[]) {
    const value = wanted[name];
    if (value === undefined || value === current.values[name]) continue;
    (FIXED_SETTINGS.includes(name) ? fixed : inPlace)[name] = value;
  }
  return { fixed: fixed as IndexSettings, inPlace: inPlace as IndexSettings };
}

/** Settings as Chroma names them inside an index configuration (`space` left out: it sits beside the index's keys in a schema). */
function chromaValues(settings: IndexSettings, withSpace: boolean): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const name of Object.keys(settings) as SettingName[]) {
    if (settings[name] === undefined || (name === "space" && !withSpace)) continue;
    values[CHROMA_KEYS[name].key] = settings[name];
  }
  return values;
}

/** The `modify` configuration that sets the in-place settings. */
export function modifyConfiguration(kind: IndexKind, settings: IndexSettings): Record<string, Record<string, unknown>> {
  return { [kind]: chromaValues(settings, false) };
}

/**
 * A saved description with the settings applied: in the configuration (Chroma 1.0.x, and 1.2+ servers without a
 * schema), in the schema's vector index configurations (1.2+: Chroma takes a schema or a configuration, and the schema
 * is what keeps every other key's index settings), and in legacy `hnsw:` metadata keys where the collection has them
 * (else they would say one thing and the index another).
 */
export function withSettings(saved: SavedCollection, kind: IndexKind, settings: IndexSettings): SavedCollection {
  const configuration = { ...saved.configuration, [kind]: { ...(record(saved.configuration[kind]) ?? {}), ...chromaValues(settings, true) } };
  let schema = saved.schema;
  if (schema) {
    schema = structuredClone(schema);
    for (const config of schemaVectorConfigs(schema)) {
      if (settings.space !== undefined) config.space = settings.space;
      config[kind] = { ...(record(config[kind]) ?? {}), ...chromaValues(settings, false) };
    }
  }
  let metadata = saved.metadata;
  if (metadata) {
    metadata = { ...metadata };
    for (const name of Object.keys(settings) as SettingName[]) {
      const { legacy } = CHROMA_KEYS[name];
      if (legacy in metadata && settings[name] !== undefined) metadata[legacy] = settings[name];
    }
  }
  return { metadata, configuration, schema };
}
