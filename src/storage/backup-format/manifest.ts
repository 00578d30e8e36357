import { createHash } from "node:crypto";
import { z } from "zod";
import { IntegrityError } from "../../config/config-error.js";
import { TOOL_VERSION } from "../../version.js";
import { COMPRESSIONS } from "./compression.js";

export const FORMAT = "vectorkeeper-backup";
export const FORMAT_VERSION = 1;

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

export const manifestSchema = z
  .object({
    format: z.literal(FORMAT),
    formatVersion: z.literal(FORMAT_VERSION),
    toolVersion: z.string(),
    backupId: z.string(),
    /** A backup (pruned by retention) or an archive of records moved out of the collection (never pruned). */
    purpose: z.enum(["backup", "archive"]),
    /** For an archive: which records it took (field before cutoff, epoch ms). */
    archived: z.object({ field: z.string(), cutoff: z.number() }).strict().optional(),
    collection: z
      .object({
        name: z.string(),
        id: z.string(),
        metadata: z.record(z.string(), z.unknown()).nullable(),
        /** Chroma's configuration as the server reports it: distance space, HNSW parameters, embedding function. */
        configuration: z.record(z.string(), z.unknown()),
      })
      .strict(),
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

export type Manifest = z.output<typeof manifestSchema>;
export type ManifestChunk = Manifest["chunks"][number];
export type UnsignedManifest = Omit<Manifest, "checksum">;

// Over the JSON as written (key order included), so it is checked against the raw parse, not zod's rebuilt object.
const checksumOf = (unsigned: object) => createHash("sha256").update(JSON.stringify(unsigned)).digest("hex");

export function serializeManifest(unsigned: UnsignedManifest): Buffer {
  const manifest: Manifest = { ...unsigned, checksum: checksumOf(unsigned) };
  return Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, "utf8");
}

/** Parses and checks a manifest read back from storage; every failure names the backup and what is wrong. */
export function parseManifest(bytes: Buffer, backupLabel: string): Manifest {
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
  if (head.data.formatVersion !== FORMAT_VERSION) {
    throw new IntegrityError(
      `backup ${backupLabel} has format version ${head.data.formatVersion}; this vectorkeeper reads version ${FORMAT_VERSION}: use a matching vectorkeeper release`,
    );
  }
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new IntegrityError(`manifest of backup ${backupLabel} is invalid at ${issue?.path.join(".")}: ${issue?.message}`);
  }
  const { checksum, ...unsigned } = raw as Record<string, unknown>;
  if (checksumOf(unsigned) !== checksum) {
    throw new IntegrityError(`manifest of backup ${backupLabel} fails its checksum: it was altered or damaged`);
  }
  if (parsed.data.chunks.reduce((n, c) => n + c.records, 0) !== parsed.data.records) {
    throw new IntegrityError(`manifest of backup ${backupLabel}: chunk record counts do not add up to ${parsed.data.records}`);
  }
  return parsed.data;
}

/** The fields every new manifest starts with. */
export function manifestHeader(backupId: string, purpose: Manifest["purpose"]) {
  return { format: FORMAT, formatVersion: FORMAT_VERSION, toolVersion: TOOL_VERSION, backupId, purpose } as const;
}

/** How a manifest describes the collection it was taken from. */
export function collectionEntry(collection: {
  name: string;
  id: string;
  metadata?: Record<string, unknown> | null | undefined;
  configuration: object;
}): Manifest["collection"] {
  return {
    name: collection.name,
    id: collection.id,
    metadata: collection.metadata ?? null,
    configuration: { ...collection.configuration } as Record<string, unknown>,
  };
}
