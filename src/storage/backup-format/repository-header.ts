import { z } from "zod";
import { ConfigError } from "../../config/config-error.js";
import { IntegrityError } from "../../errors.js";
import { ObjectNotFoundError, type ObjectStore } from "../object-store.js";
import { deriveKeys, KeyError, newKdfParams, type RepositoryKeys } from "./encryption.js";

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
      .strict(),
  })
  .strict();

/** The key id an encrypted store's header names, or undefined for a store without one. */
export async function storeKeyId(store: ObjectStore): Promise<string | undefined> {
  try {
    return parseHeader(await store.get(HEADER_KEY), store.description).keyId;
  } catch (error) {
    if (error instanceof ObjectNotFoundError) return undefined;
    throw error;
  }
}

function parseHeader(body: Buffer, where: string): z.output<typeof headerSchema> {
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
  let body: Buffer | undefined;
  try {
    body = await store.get(HEADER_KEY);
  } catch (error) {
    if (!(error instanceof ObjectNotFoundError)) throw error;
  }
  if (body) {
    const header = parseHeader(body, store.description);
    const { name: _name, ...kdf } = header.kdf;
    const keys = deriveKeys(secret, kdf);
    if (keys.keyId !== header.keyId) {
      throw new KeyError(
        `${store.description} is encrypted with key ${header.keyId}, but VK_BACKUP_KEY_FILE holds key ${keys.keyId}: use the key file its backups were made with`,
      );
    }
    return keys;
  }
  for await (const object of store.list("")) {
    throw new ConfigError(
      `${store.description} holds unencrypted backups (${object.key}) and one store holds one key: give encrypted backups a new BACKUP_URL, or unset VK_BACKUP_KEY_FILE`,
    );
  }
  const kdf = newKdfParams();
  const keys = deriveKeys(secret, kdf);
  const header = { format: "vectorkeeper-repository", version: 1, encryption: "aes-256-gcm", keyId: keys.keyId, kdf: { name: "scrypt", ...kdf } };
  await store.put(HEADER_KEY, Buffer.from(`${JSON.stringify(header, null, 2)}\n`, "utf8"));
  return keys;
}
