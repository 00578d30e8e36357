import { setTimeout } from "node:timers/promises";
import { z } from "zod";
import { ConfigError } from "../../config/config-error.js";
import { DEFAULTS } from "../../config/defaults.js";
import { IntegrityError } from "../../errors.js";
import { ObjectNotFoundError, type ObjectStore, type StoredObject } from "../objects/object-store.js";
import { deriveKeys, KeyError, newKdfParams, sealedKeyId, type RepositoryKeys } from "./encryption.js";

/**
 * The one readable object of an encrypted store, at its root: the format, the key id and scrypt's parameters. It holds
 * no secret; the key id lets a reader say which key a store needs.
 */
export const HEADER_KEY = "vectorkeeper-repository.json";

const headerSchema = z
  .object({
    format: z.literal("vectorkeeper-repository"),
    version: z.literal(1),
    encryption: z.literal("aes-256-gcm"),
    keyId: z.string().regex(/^[0-9a-f]{16}$/),
    kdf: z
      .object({
        name: z.literal("scrypt"),
        N: z.number().int().min(1024).max(2 ** 20),
        r: z.number().int().min(1).max(32),
        p: z.number().int().min(1).max(16),
        salt: z.string().min(16),
      })
      .strict()
      // What scrypt accepts, and at most 8× the default's work and 256 MiB of memory: an altered header must not stall
      // or crash a reader.
      .refine((kdf) => (kdf.N & (kdf.N - 1)) === 0 && kdf.N * kdf.r * kdf.p <= 2 ** 21, { message: "N must be a power of 2, and N × r × p at most 2^21" }),
  })
  .strict();

/** The key id an encrypted store's header names, or undefined for a store without one. */
export async function storeKeyId(store: ObjectStore): Promise<string | undefined> {
  return (await readHeader(store))?.keyId;
}

function parseHeader(body: Buffer, where: string): Header {
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString("utf8"));
  } catch {
    throw new IntegrityError(`${HEADER_KEY} in ${where} is not JSON: the repository header was damaged or altered`);
  }
  const parsed = headerSchema.safeParse(raw);
  if (!parsed.success) {
    throw new IntegrityError(`${HEADER_KEY} in ${where} is invalid at ${parsed.error.issues[0]?.path.join(".")}: the repository header was damaged or altered`);
  }
  return parsed.data;
}

/**
 * The keys of an encrypted store, from its header and the passphrase; a store without a header gets one, if it holds
 * nothing yet (one store holds one key: encrypted and plain backups never mix).
 */
export async function openRepository(store: ObjectStore, secret: Buffer): Promise<RepositoryKeys> {
  const found = await readHeader(store);
  if (found) return keysOf(await settled(store, found, undefined), secret, store.description);
  // Derived before the store is checked for emptiness, so that check and the header's write follow each other closely.
  const kdf = newKdfParams();
  const keys = await deriveKeys(secret, kdf);
  let adopted: StoredObject | undefined;
  for await (const object of store.list("")) {
    // Written since the read above: another process set the store up; its header is read back below.
    if (object.key === HEADER_KEY) {
      adopted = object;
      break;
    }
    const keyId = sealedKeyId(await store.get(object.key));
    if (keyId !== undefined) {
      // Another process may have set the store up since the read above, and its chunks list before the header.
      const late = await readHeader(store);
      if (late) return keysOf(await settled(store, late, undefined), secret, store.description);
      throw new IntegrityError(
        `${HEADER_KEY} is missing from ${store.description}, whose objects are encrypted with key ${keyId}: put back a copy of it (without its salt no key file can open them)`,
      );
    }
    throw new ConfigError(
      `${store.description} holds unencrypted backups (${object.key}) and one store holds one key: give encrypted backups a new BACKUP_URL, or unset VK_BACKUP_KEY_FILE`,
    );
  }
  if (!adopted) {
    const header = { format: "vectorkeeper-repository", version: 1, encryption: "aes-256-gcm", keyId: keys.keyId, kdf: { name: "scrypt", ...kdf } };
    // Conditional where the store honours it (file://, AWS S3, MinIO, R2): then only one header is ever written.
    await store.create(HEADER_KEY, Buffer.from(`${JSON.stringify(header, null, 2)}\n`, "utf8"));
    // Processes that found the store empty at once each wrote a header, and the store kept one: all of them read it
    // back once every write is done, and seal with its key, so no backup is sealed under a header that was overwritten.
    await setTimeout(DEFAULTS.backup.headerSettleMs);
  }
  const kept = adopted ? await settled(store, await readHeader(store), adopted.lastModified) : await readHeader(store);
  return kept?.kdf.salt === kdf.salt && kept.keyId === keys.keyId ? keys : keysOf(kept, secret, store.description);
}

/**
 * The header that stands. One younger than the settle time may still be replaced by a racing writer's, on a store
 * that cannot refuse a second create: a process adopting it waits as its writers do, and reads it again.
 */
async function settled(store: ObjectStore, header: Header | undefined, lastModified: Date | undefined): Promise<Header | undefined> {
  if (header === undefined) return undefined;
  const written = lastModified ?? (await headerModified(store));
  // S3 listings give whole seconds: a second of slack, so a header written late in one is not taken as older.
  if (written === undefined || Date.now() - written.getTime() >= DEFAULTS.backup.headerSettleMs + 1000) return header;
  await setTimeout(DEFAULTS.backup.headerSettleMs);
  return readHeader(store);
}

async function headerModified(store: ObjectStore): Promise<Date | undefined> {
  for await (const object of store.list(HEADER_KEY)) if (object.key === HEADER_KEY) return object.lastModified;
  return undefined;
}

type Header = z.output<typeof headerSchema>;

async function readHeader(store: ObjectStore): Promise<Header | undefined> {
  try {
    return parseHeader(await store.get(HEADER_KEY), store.description);
  } catch (error) {
    if (error instanceof ObjectNotFoundError) return undefined;
    throw error;
  }
}

async function keysOf(header: Header | undefined, secret: Buffer, where: string): Promise<RepositoryKeys> {
  if (!header) throw new IntegrityError(`${HEADER_KEY} was deleted from ${where} while this process set the store up`);
  const { name: _name, ...kdf } = header.kdf;
  const keys = await deriveKeys(secret, kdf);
  if (keys.keyId !== header.keyId) {
    // A wrong key file and an altered header (salt, parameters or key id) look the same: both are named.
    throw new KeyError(
      `${where} is encrypted with key ${header.keyId}, but VK_BACKUP_KEY_FILE holds key ${keys.keyId}: use the key file its backups were made with (if it is that one, ${HEADER_KEY} was altered: put back a copy)`,
    );
  }
  return keys;
}
