import { createCipheriv, createDecipheriv, createHmac, randomBytes, scrypt, type ScryptOptions } from "node:crypto";
import { ConfigError } from "../../config/config-error.js";
import { IntegrityError } from "../../errors.js";

/**
 * An encrypted object: "VKE1" | key id (8 bytes) | nonce (12 bytes, random per object) | AES-256-GCM ciphertext |
 * tag (16 bytes). The object's key is the additional authenticated data, so an object moved under another name fails
 * as surely as an altered one. The key id is there so a reader without the key (or with another) can say which key
 * it needs.
 */
const MAGIC = Buffer.from("VKE1", "ascii");
const KEY_ID_BYTES = 8;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const HEAD = MAGIC.length + KEY_ID_BYTES + NONCE_BYTES;
/** Bytes an encrypted object has beyond its plaintext. */
export const SEALED_OVERHEAD = HEAD + TAG_BYTES;

/** scrypt's parameters, kept readable in the repository header. */
export interface KdfParams {
  N: number;
  r: number;
  p: number;
  /** base64 */
  salt: string;
}

/** Keys derived from the passphrase: one encrypts, one names chunks (an HMAC, revealing no hash of plaintext). */
export interface RepositoryKeys {
  keyId: string;
  encrypt: Buffer;
  name: Buffer;
}

export function newKdfParams(): KdfParams {
  return { N: 32768, r: 8, p: 1, salt: randomBytes(16).toString("base64") };
}

/** On libuv's thread pool, not the main thread: lease renewals, lock extensions and /livez keep running meanwhile. */
export async function deriveKeys(secret: Buffer, kdf: KdfParams): Promise<RepositoryKeys> {
  const options: ScryptOptions = { N: kdf.N, r: kdf.r, p: kdf.p, maxmem: 256 * kdf.N * kdf.r };
  const material = await new Promise<Buffer>((resolve, reject) => {
    scrypt(secret, Buffer.from(kdf.salt, "base64"), 64, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
  const encrypt = material.subarray(0, 32);
  const name = material.subarray(32, 64);
  const keyId = createHmac("sha256", name).update("vectorkeeper key id").digest().subarray(0, KEY_ID_BYTES).toString("hex");
  return { keyId, encrypt, name };
}

/** A chunk's name in an encrypted store: keyed, so equal names show equal chunks only to a holder of the key. */
export function contentName(keys: RepositoryKeys, body: Uint8Array): string {
  return createHmac("sha256", keys.name).update(body).digest("hex");
}

export function seal(keys: RepositoryKeys, objectKey: string, plain: Uint8Array): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv("aes-256-gcm", keys.encrypt, nonce);
  cipher.setAAD(Buffer.from(objectKey, "utf8"));
  const body = Buffer.concat([cipher.update(plain), cipher.final()]);
  return Buffer.concat([MAGIC, Buffer.from(keys.keyId, "hex"), nonce, body, cipher.getAuthTag()]);
}

/** The key id an encrypted object needs, or undefined for a plain object. */
export function sealedKeyId(bytes: Uint8Array): string | undefined {
  if (bytes.length < SEALED_OVERHEAD || !Buffer.from(bytes.subarray(0, MAGIC.length)).equals(MAGIC)) return undefined;
  return Buffer.from(bytes.subarray(MAGIC.length, MAGIC.length + KEY_ID_BYTES)).toString("hex");
}

export function unseal(keys: RepositoryKeys, objectKey: string, sealed: Buffer, where: string): Buffer {
  return openSealed(keys, objectKey, sealed, `${objectKey} in ${where}`);
}

/**
 * Checks and decrypts a sealed object or chunk; `context` is the additional authenticated data it was sealed with
 * (an object's key; for a chunk in a pack, its collection and name), `label` what a failure names.
 */
export function openSealed(keys: RepositoryKeys, context: string, sealed: Buffer, label: string): Buffer {
  const keyId = sealedKeyId(sealed);
  if (keyId === undefined) throw new IntegrityError(`${label} is not encrypted, in an encrypted store: it was replaced`);
  if (keyId !== keys.keyId) throw wrongKey(keyId, keys.keyId);
  const decipher = createDecipheriv("aes-256-gcm", keys.encrypt, sealed.subarray(MAGIC.length + KEY_ID_BYTES, HEAD));
  decipher.setAAD(Buffer.from(context, "utf8"));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    return Buffer.concat([decipher.update(sealed.subarray(HEAD, sealed.length - TAG_BYTES)), decipher.final()]);
  } catch {
    throw new IntegrityError(`${label} fails authentication: it was altered or damaged`);
  }
}

/** The key a store needs is missing or another: exit 2, and never listed as a damaged backup. */
export class KeyError extends ConfigError {
  override name = "KeyError";
}

export function wrongKey(needed: string, held: string | undefined): KeyError {
  return new KeyError(
    held === undefined
      ? `the backups are encrypted with key ${needed}: set VK_BACKUP_KEY_FILE to the file holding that key`
      : `the backups are encrypted with key ${needed}, but VK_BACKUP_KEY_FILE holds key ${held}: use the key file they were made with`,
  );
}
