import { createHash } from "node:crypto";
import { z } from "zod";
import { IntegrityError } from "../../errors.js";
import { TOOL_VERSION } from "../../version.js";
import { CHROMA_FEATURES, recordFeatures, type ChromaFeature } from "../chroma/features.js";
import type { CollectionAnswer } from "../chroma/rest.js";
import { COMPRESSIONS } from "./compression.js";
import { sealedKeyId, wrongKey } from "./encryption.js";

export const FORMAT = "vectorkeeper-backup";
/** 2 added the collection's schema, record URIs and the `features` list; version 1 manifests are still read. */
export const FORMAT_VERSION = 2;
/** 3: chunks stored once per collection under their content's name and shared by backups (read, no longer written). */
export const SHARED_CHUNKS_FORMAT_VERSION = 3;
/** 4: content-named chunks stored once per collection inside packs, shared by backups (dedupe). */
export const DEDUPED_FORMAT_VERSION = 4;
const READABLE_VERSIONS = [1, 2, 3, 4];

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, { message: "must be a hex SHA-256" });

const chunkEntry = z
  .object({
    /** Relative to the backup's folder. */
    key: z.string().regex(/^chunk-\d{6}\.vkc(\.gz|\.zst)?$/),
    records: z.number().int().positive(),
    bytes: z.number().int().positive(),
    sha256: sha256Hex,
  })
  .strict();

const collectionV1 = z
  .object({
    name: z.string(),
    id: z.string(),
    metadata: z.record(z.string(), z.unknown()).nullable(),
    /** Chroma's configuration as the server reports it: distance space, HNSW parameters, embedding function. */
    configuration: z.record(z.string(), z.unknown()),
  })
  .strict();

const manifestV1 = z
  .object({
    format: z.literal(FORMAT),
    formatVersion: z.literal(1),
    toolVersion: z.string(),
    backupId: z.string(),
    /** A backup (pruned by retention) or an archive of records moved out of the collection (never pruned). */
    purpose: z.enum(["backup", "archive"]),
    /** For an archive: which records it took (field before cutoff, epoch ms). */
    archived: z.object({ field: z.string(), cutoff: z.number() }).strict().optional(),
    collection: collectionV1,
    /** Embedding dimension; null for an empty collection. */
    dimension: z.number().int().positive().nullable(),
    records: z.number().int().nonnegative(),
    countBefore: z.number().int().nonnegative(),
    countAfter: z.number().int().nonnegative(),
    /** False when the collection's count changed while it was read: the backup may miss or repeat records. */
    consistent: z.boolean(),
    /** Records listed, then deleted before they were fetched (absent in manifests of vectorkeeper 0.1 before it counted them). */
    deletedWhileReading: z.number().int().nonnegative().optional(),
    compression: z.enum(COMPRESSIONS),
    chunks: z.array(chunkEntry),
    startedAt: z.iso.datetime(),
    finishedAt: z.iso.datetime(),
    durationMs: z.number().nonnegative(),
    /** SHA-256 of this manifest's JSON without this field: a tampered or damaged manifest is refused. */
    checksum: sha256Hex,
  })
  .strict();

/** Format 3: `key` names the chunk in the collection's chunks folder and is the SHA-256 of its stored bytes. */
const sharedChunkEntry = z
  .object({
    key: sha256Hex,
    records: z.number().int().positive(),
    bytes: z.number().int().positive(),
  })
  .strict();

export const manifestSchema = manifestV1
  .extend({
    formatVersion: z.literal(FORMAT_VERSION),
    collection: collectionV1
      .extend({
        /** Chroma 1.2+: the collection's schema verbatim, as the GET collection answer carries it. */
        schema: z.record(z.string(), z.unknown()).optional(),
      })
      .strict(),
    /** What the backup holds that not every server can: a restore checks its target against it before writing. */
    features: z.array(z.enum(CHROMA_FEATURES)),
  })
  .strict();

const sharedChunksManifestSchema = manifestSchema
  .extend({ formatVersion: z.literal(SHARED_CHUNKS_FORMAT_VERSION), chunks: z.array(sharedChunkEntry) })
  .strict();

/**
 * Format 4: `key` is the chunk's content name (its SHA-256, keyed when encrypted), `pack` an index into the manifest's
 * `packs`, and the chunk the `bytes` bytes of that pack from `offset` (sealed, when encrypted).
 */
const packedChunkEntry = sharedChunkEntry.extend({ pack: z.number().int().nonnegative(), offset: z.number().int().nonnegative() }).strict();
const packEntry = z.object({ name: sha256Hex, bytes: z.number().int().positive() }).strict();

const packedManifestSchema = manifestSchema
  .extend({ formatVersion: z.literal(DEDUPED_FORMAT_VERSION), chunks: z.array(packedChunkEntry), packs: z.array(packEntry) })
  .strict()
  .superRefine((manifest, context) => {
    for (const [index, chunk] of manifest.chunks.entries()) {
      const pack = manifest.packs[chunk.pack];
      if (!pack || chunk.offset + chunk.bytes > pack.bytes) {
        context.addIssue({ code: "custom", path: ["chunks", index], message: pack ? "lies beyond the end of its pack" : "names no listed pack" });
        return;
      }
    }
  });

export type PackedChunk = z.output<typeof packedChunkEntry>;
export type PackEntry = z.output<typeof packEntry>;

/** A chunk entry of any version; format 3's has no `sha256` (its key is the hash), format 4's says where in which pack. */
export type ManifestChunk = z.output<typeof chunkEntry> | z.output<typeof sharedChunkEntry> | PackedChunk;

/** A manifest of any version, as the current one (a version 1 manifest uses none of the newer features). */
export type Manifest = Omit<z.output<typeof manifestSchema>, "formatVersion" | "chunks"> & {
  formatVersion: 1 | typeof FORMAT_VERSION | typeof SHARED_CHUNKS_FORMAT_VERSION | typeof DEDUPED_FORMAT_VERSION;
  chunks: ManifestChunk[];
  /** Format 4: the packs its chunks are in. */
  packs?: PackEntry[];
};
export type UnsignedManifest = Omit<Manifest, "checksum">;

// Over the JSON as written (key order included), so it is checked against the raw parse, not zod's rebuilt object.
const checksumOf = (unsigned: object) => createHash("sha256").update(JSON.stringify(unsigned)).digest("hex");

export function serializeManifest(unsigned: UnsignedManifest): Buffer {
  const manifest: Manifest = { ...unsigned, checksum: checksumOf(unsigned) };
  // Formats 3 and 4 list thousands of small chunks: compact, so an unchanged collection's backup stays a small upload.
  const indent = manifest.formatVersion >= SHARED_CHUNKS_FORMAT_VERSION ? undefined : 2;
  return Buffer.from(`${JSON.stringify(manifest, null, indent)}\n`, "utf8");
}

/** Parses and checks a manifest read back from storage; every failure names the backup and what is wrong. */
export function parseManifest(bytes: Buffer, backupLabel: string): Manifest {
  const keyId = sealedKeyId(bytes);
  if (keyId !== undefined) throw wrongKey(keyId, undefined);
  let raw: unknown;
  try {
    raw = JSON.parse(bytes.toString("utf8"));
  } catch {
    throw new IntegrityError(`manifest of backup ${backupLabel} is truncated or not JSON`);
  }
  const head = z.object({ format: z.string(), formatVersion: z.number() }).safeParse(raw);
  if (!head.success || head.data.format !== FORMAT) {
    throw new IntegrityError(`manifest of backup ${backupLabel} is not a vectorkeeper manifest`);
  }
  if (!READABLE_VERSIONS.includes(head.data.formatVersion)) {
    throw new IntegrityError(
      `backup ${backupLabel} has format version ${head.data.formatVersion}; this vectorkeeper reads versions ${`${READABLE_VERSIONS.slice(0, -1).join(", ")} and ${READABLE_VERSIONS.at(-1)}`}: use a matching vectorkeeper release`,
    );
  }
  const schema = [manifestV1, manifestSchema, sharedChunksManifestSchema, packedManifestSchema][head.data.formatVersion - 1]!;
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new IntegrityError(`manifest of backup ${backupLabel} ${manifestProblem(parsed.error)}`);
  const { checksum, ...unsigned } = raw as Record<string, unknown>;
  if (checksumOf(unsigned) !== checksum) {
    throw new IntegrityError(`manifest of backup ${backupLabel} fails its checksum: it was altered or damaged`);
  }
  const chunks: ManifestChunk[] = parsed.data.chunks;
  if (chunks.reduce((n, c) => n + c.records, 0) !== parsed.data.records) {
    throw new IntegrityError(`manifest of backup ${backupLabel}: chunk record counts do not add up to ${parsed.data.records}`);
  }
  return "features" in parsed.data ? parsed.data : { ...parsed.data, features: [] };
}

/** What a manifest holds that this version cannot restore (a field or feature of a newer release), or what else is wrong. */
function manifestProblem(error: z.ZodError): string {
  const issue = error.issues[0];
  const at = issue?.path.join(".") ?? "";
  if (issue?.code === "unrecognized_keys") {
    const fields = issue.keys.map((key) => `"${at ? `${at}.` : ""}${key}"`).join(", ");
    return `holds field ${fields}, which this vectorkeeper (${TOOL_VERSION}) cannot restore: use a newer release`;
  }
  if (issue?.path[0] === "features" && issue.code === "invalid_value") {
    return `uses feature ${at}, which this vectorkeeper (${TOOL_VERSION}) cannot restore: use a newer release`;
  }
  return `is invalid at ${at}: ${issue?.message}`;
}

/** The fields every new manifest starts with. */
export function manifestHeader(backupId: string, purpose: Manifest["purpose"], formatVersion: Manifest["formatVersion"] = FORMAT_VERSION) {
  return { format: FORMAT, formatVersion, toolVersion: TOOL_VERSION, backupId, purpose } as const;
}

/** How a manifest describes the collection it was taken from: as the server described it, schema verbatim. */
export function collectionEntry(collection: CollectionAnswer): Manifest["collection"] {
  return {
    name: collection.name,
    id: collection.id,
    metadata: collection.metadata ?? null,
    configuration: collection.configuration_json ?? {},
    ...(collection.schema ? { schema: collection.schema } : {}),
  };
}

/** The features a backup uses: its collection's schema, and what its records hold (from `recordFeatures`). */
export function manifestFeatures(collection: Manifest["collection"], records: Iterable<ChromaFeature>): ChromaFeature[] {
  const used = new Set(records);
  if (collection.schema) used.add("schema");
  return CHROMA_FEATURES.filter((feature) => used.has(feature));
}

export { recordFeatures };
