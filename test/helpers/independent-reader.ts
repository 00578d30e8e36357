/**
 * A reader of vectorkeeper backups written from docs/format.md alone, as a third party would write one: it uses only
 * Node's built-ins and imports nothing from vectorkeeper, so a test that reads a real backup with it checks the
 * document against the code.
 */
import { createHash } from "node:crypto";
import { closeSync, openSync, readdirSync, readFileSync, readSync, statSync } from "node:fs";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";

export interface ReadRecord {
  id: string;
  document: string | null;
  metadata: Record<string, unknown> | null;
  uri: string | null;
  /** float32 bit patterns, as unsigned 32-bit integers. */
  bits: number[];
}

export interface ReadBackup {
  manifest: Record<string, unknown>;
  records: ReadRecord[];
}

const BACKUP_ID = /^\d{8}T\d{9}Z-[0-9a-f]{6}$/;
const sha256 = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** §2 "Manifest checksum": strip whitespace outside strings, cut the final checksum member, hash. */
function manifestChecksumHolds(text: string): boolean {
  let compact = "";
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (inString) {
      compact += c;
      if (c === "\\") compact += text[++i]!;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
      compact += c;
    } else if (c !== " " && c !== "\t" && c !== "\n" && c !== "\r") {
      compact += c;
    }
  }
  const tail = /,"checksum":"([0-9a-f]{64})"}$/.exec(compact);
  if (!tail) return false;
  return sha256(Buffer.from(compact.slice(0, tail.index) + "}", "utf8")) === tail[1];
}

/** §3: the stored bytes back to the raw chunk. */
function decompress(stored: Buffer, compression: string): Buffer {
  if (compression === "gzip") return gunzipSync(stored);
  if (compression === "none") return stored;
  throw new Error(`this reader handles gzip and none, not ${compression}`);
}

/** §3 "Raw chunk" and "Embeddings and the byte shuffle". */
function decodeRaw(raw: Buffer): { json: Record<string, unknown>; values: Uint32Array } {
  if (raw.subarray(0, 4).toString("ascii") !== "VKC1") throw new Error("bad magic");
  const length = raw.readUInt32LE(4);
  const json = JSON.parse(raw.subarray(8, 8 + length).toString("utf8")) as Record<string, unknown>;
  const planes = raw.subarray(8 + length);
  const n = (json.count as number) * (json.dimension as number);
  if (planes.length !== n * 4) throw new Error(`embedding section has ${planes.length} bytes, expected ${n * 4}`);
  const values = new Uint32Array(n);
  for (let k = 0; k < n; k++) {
    // Little-endian: plane 0 holds the lowest byte.
    values[k] = (planes[k]! | (planes[n + k]! << 8) | (planes[2 * n + k]! << 16) | (planes[3 * n + k]! << 24)) >>> 0;
  }
  return { json, values };
}

/** Every complete backup under a file:// store root: `<collection>/<backupId>/manifest.json` (§1). */
export function listBackups(root: string): { collection: string; backupId: string }[] {
  const found: { collection: string; backupId: string }[] = [];
  for (const collection of readdirSync(root)) {
    for (const backupId of readdirSync(join(root, collection))) {
      if (!BACKUP_ID.test(backupId)) continue;
      if (readdirSync(join(root, collection, backupId)).includes("manifest.json")) found.push({ collection, backupId });
    }
  }
  return found;
}

/** Reads and checks one backup (§4) and returns its records in stored order. */
export function readBackup(root: string, collection: string, backupId: string): ReadBackup {
  const folder = join(root, collection, backupId);
  const text = readFileSync(join(folder, "manifest.json"), "utf8");
  if (!manifestChecksumHolds(text)) throw new Error("manifest checksum does not hold");
  const manifest = JSON.parse(text) as Record<string, unknown>;
  const version = manifest.formatVersion as number;
  if (manifest.format !== "vectorkeeper-backup" || ![1, 2, 3, 4].includes(version)) throw new Error("unknown format");
  const described = manifest.collection as { name: string };
  if (described.name !== collection || manifest.backupId !== backupId) throw new Error("manifest is in the wrong folder");
  const chunks = manifest.chunks as { key: string; records: number; bytes: number; sha256?: string; pack?: number; offset?: number }[];
  const packs = (manifest.packs ?? []) as { name: string; bytes: number }[];
  const dimension = manifest.dimension as number;
  const records: ReadRecord[] = [];
  for (const chunk of chunks) {
    const stored = storedChunk(root, collection, folder, version, chunk, packs);
    if (stored.length !== chunk.bytes) throw new Error(`${chunk.key}: size`);
    // §2: versions 1 and 2 give the hash beside the key; §6, §7: in versions 3 and 4 the key is the hash.
    if (sha256(stored) !== (version >= 3 ? chunk.key : chunk.sha256)) throw new Error(`${chunk.key}: sha256`);
    const { json, values } = decodeRaw(decompress(stored, manifest.compression as string));
    const ids = json.ids as string[];
    if (json.count !== chunk.records || ids.length !== chunk.records || json.dimension !== dimension) {
      throw new Error(`${chunk.key}: counts`);
    }
    const documents = json.documents as (string | null)[] | null;
    const metadatas = json.metadatas as (Record<string, unknown> | null)[] | null;
    const uris = json.uris as (string | null)[] | undefined;
    ids.forEach((id, i) =>
      records.push({
        id,
        document: documents?.[i] ?? null,
        metadata: metadatas?.[i] ?? null,
        uri: uris?.[i] ?? null,
        bits: Array.from(values.subarray(i * dimension, (i + 1) * dimension)),
      }),
    );
  }
  if (records.length !== manifest.records) throw new Error("record total");
  return { manifest, records };
}

/** A chunk's stored bytes: in the backup's folder (§1), the collection's chunks folder (§6), or a range of a pack (§7). */
function storedChunk(
  root: string,
  collection: string,
  folder: string,
  version: number,
  chunk: { key: string; bytes: number; pack?: number; offset?: number },
  packs: { name: string; bytes: number }[],
): Buffer {
  if (version <= 2) return readFileSync(join(folder, chunk.key));
  if (version === 3) return readFileSync(join(root, collection, "chunks", chunk.key));
  const pack = packs[chunk.pack!];
  if (!pack || chunk.offset! + chunk.bytes > pack.bytes) throw new Error(`${chunk.key}: pack`);
  const path = join(root, collection, "packs", pack.name);
  if (statSync(path).size !== pack.bytes) throw new Error(`${pack.name}: pack size`);
  const file = openSync(path, "r");
  try {
    const bytes = Buffer.alloc(chunk.bytes);
    return bytes.subarray(0, readSync(file, bytes, 0, chunk.bytes, chunk.offset!));
  } finally {
    closeSync(file);
  }
}
