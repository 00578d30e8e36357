import { readFileSync } from "node:fs";
import { ConfigError } from "../../config/config-error.js";
import { IntegrityError } from "../../errors.js";
import type { ObjectStore, StoredObject } from "../objects/object-store.js";
import { contentName, openSealed, SEALED_OVERHEAD, seal, unseal, type RepositoryKeys } from "./encryption.js";
import { isPackKey, MANIFEST } from "./layout.js";
import { HEADER_KEY, openRepository, storeKeyId } from "./repository-header.js";

/**
 * An object store whose objects are encrypted and authenticated (AES-256-GCM, a random nonce each) on their way in
 * and checked and decrypted on their way out; everything above it (backups, restore, verify, list, prune) works
 * unchanged. Listings report an object's plaintext size, as manifests record it. Only the repository header stays
 * readable; chunk names come from `contentName`, an HMAC, so they reveal no hash of the plaintext. Packs (format 4)
 * are stored as written: each chunk in them is sealed by itself (`sealBlob`), so one can be read and checked alone.
 */
export class EncryptedStore implements ObjectStore {
  private keys: Promise<RepositoryKeys> | undefined;

  constructor(
    private readonly inner: ObjectStore,
    private readonly secret: Buffer,
  ) {}

  get description(): string {
    return this.inner.description;
  }

  private ready(): Promise<RepositoryKeys> {
    // A failed set-up (a transient S3 error, a header being written) is not kept: the next job tries again.
    return (this.keys ??= openRepository(this.inner, this.secret).catch((error: unknown) => {
      this.keys = undefined;
      throw error;
    }));
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    const keys = await this.ready();
    if (key.endsWith(`/${MANIFEST}`)) await this.checkHeader(keys);
    await this.inner.put(key, isPackKey(key) ? body : seal(keys, key, body));
  }

  /**
   * Before a backup becomes visible: the header must still name the key this process seals with. Processes that set
   * up one store at once, on a store that cannot refuse a second header, could otherwise seal backups under a salt
   * that was overwritten, which no key file can open. One GET per backup turns that silent loss into an error.
   */
  private async checkHeader(keys: RepositoryKeys): Promise<void> {
    const stands = await storeKeyId(this.inner);
    if (stands === keys.keyId) return;
    this.keys = undefined;
    throw new IntegrityError(
      `${HEADER_KEY} in ${this.inner.description} names key ${stands ?? "none (it is missing)"}, but this backup was sealed with key ${keys.keyId} (another process set the store up at the same time): the backup was not completed; run it again`,
    );
  }

  async create(key: string, body: Uint8Array): Promise<boolean> {
    return this.inner.create(key, seal(await this.ready(), key, body));
  }

  storedBytes(bytes: number): number {
    return (this.inner.storedBytes?.(bytes + SEALED_OVERHEAD)) ?? bytes + SEALED_OVERHEAD;
  }

  async get(key: string): Promise<Buffer> {
    const keys = await this.ready();
    const body = await this.inner.get(key);
    return isPackKey(key) ? body : unseal(keys, key, body, this.inner.description);
  }

  /** Packs only: other objects are sealed whole, and a part of one cannot be authenticated. */
  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    await this.ready();
    if (!isPackKey(key)) throw new Error(`${key}: only packs are read in parts from an encrypted store`);
    return this.inner.getRange(key, offset, length);
  }

  async sealBlob(context: string, plain: Uint8Array): Promise<Buffer> {
    return seal(await this.ready(), context, plain);
  }

  async openBlob(context: string, sealed: Buffer, label: string): Promise<Buffer> {
    return openSealed(await this.ready(), context, sealed, `${label} in ${this.inner.description}`);
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    await this.ready();
    for await (const object of this.inner.list(prefix)) {
      if (object.key !== HEADER_KEY) yield isPackKey(object.key) ? object : { ...object, size: Math.max(0, object.size - SEALED_OVERHEAD) };
    }
  }

  delete(keys: readonly string[]): Promise<void> {
    return this.inner.delete(keys);
  }

  collectUnfinished(prefix: string, before: Date, dryRun?: boolean): Promise<string[]> {
    return this.inner.collectUnfinished(prefix, before, dryRun);
  }

  async contentName(body: Uint8Array): Promise<string> {
    return contentName(await this.ready(), body);
  }
}

/** The passphrase or random key in VK_BACKUP_KEY_FILE (surrounding whitespace dropped). Never logged. */
export function readKeyFile(path: string): Buffer {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (error) {
    throw new ConfigError(`VK_BACKUP_KEY_FILE: cannot read ${path} (${(error as NodeJS.ErrnoException).code ?? "unreadable"}); make one with: head -c 32 /dev/urandom | base64 > ${path}`);
  }
  const secret = text.trim();
  if (secret.length < 8) throw new ConfigError(`VK_BACKUP_KEY_FILE: ${path} holds fewer than 8 characters; make a key with: head -c 32 /dev/urandom | base64 > ${path}`);
  return Buffer.from(secret, "utf8");
}
