/** One stored object as a listing shows it. */
export interface StoredObject {
  /** Relative to the store's root (the prefix of BACKUP_URL). */
  key: string;
  size: number;
  lastModified: Date;
}

/**
 * The little vectorkeeper needs of an object store; `s3://` and `file://` behave the same behind it.
 * Keys use `/` separators and are relative to the store's root.
 */
export interface ObjectStore {
  /** Where it stores, for messages and logs (no credentials). */
  readonly description: string;
  /** Writes a whole object; a reader never sees it half written. */
  put(key: string, body: Uint8Array): Promise<void>;
  /**
   * Writes a whole object only if none has its key yet (a conditional create, so two writers racing for one key agree
   * on the winner); false when one had. A store that cannot refuse (an S3 server ignoring `If-None-Match`) writes and
   * answers true: callers read the object back to learn what stands.
   */
  create(key: string, body: Uint8Array): Promise<boolean>;
  /** Reads a whole object, or throws {@link ObjectNotFoundError}. */
  get(key: string): Promise<Buffer>;
  /**
   * Reads `length` bytes of an object from `offset` (S3: a Range GET), or throws {@link ObjectNotFoundError}; fewer
   * bytes when the object ends sooner. Format 4 reads chunks out of packs this way.
   */
  getRange(key: string, offset: number, length: number): Promise<Buffer>;
  /** Every object whose key starts with `prefix`. */
  list(prefix: string): AsyncIterable<StoredObject>;
  /** Deletes objects; missing ones are not an error. */
  delete(keys: readonly string[]): Promise<void>;
  /**
   * Writes that a crash or a failure left unfinished under `prefix` and last touched before `before` (`.partial` temp
   * files of file://, multipart uploads never completed on S3), which listings do not show: removed (unless
   * `dryRun`), their keys returned.
   */
  collectUnfinished(prefix: string, before: Date, dryRun?: boolean): Promise<string[]>;
  /**
   * The name a shared chunk (formats 3 and 4) is stored under, when the store decides it: an encrypted store uses a keyed
   * HMAC, so names reveal no hash of the plaintext. Without it a chunk's name is the SHA-256 of its bytes.
   */
  contentName?(body: Uint8Array): Promise<string>;
  /**
   * An encrypted store seals each chunk of a pack (format 4) by itself, so a chunk read out of its pack can be checked
   * alone; the pack around the sealed chunks is stored as written. `context` is authenticated with the chunk.
   */
  sealBlob?(context: string, plain: Uint8Array): Promise<Buffer>;
  /** Checks and decrypts a chunk `sealBlob` sealed; a failure names `label` (the chunk and its pack). */
  openBlob?(context: string, sealed: Buffer, label: string): Promise<Buffer>;
  /** What an object of `bytes` bytes takes on the store, when the store adds to it (an encrypted store's envelope). */
  storedBytes?(bytes: number): number;
}

/** What writing `bytes` bytes puts on the store (an encrypted store adds its envelope to each object). */
export const storedBytes = (store: ObjectStore, bytes: number): number => store.storedBytes?.(bytes) ?? bytes;

export class ObjectNotFoundError extends Error {
  override readonly name = "ObjectNotFoundError";
  constructor(
    readonly key: string,
    where: string,
  ) {
    super(`${key} not found in ${where}`);
  }
}
