import type { ObjectStore, StoredObject } from "./object-store.js";

/**
 * An object store made at its first use, by a `load` that may import its implementation then: the S3 store's SDK takes
 * a noticeable share of a CLI start, and most commands (a probe, a warm, a bad flag) never touch the store. It offers
 * only the required methods, as the stores it stands for (S3, file) do.
 */
export class DeferredStore implements ObjectStore {
  private store: Promise<ObjectStore> | undefined;

  constructor(
    readonly description: string,
    private readonly load: () => Promise<ObjectStore>,
  ) {}

  private loaded(): Promise<ObjectStore> {
    return (this.store ??= this.load());
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    return (await this.loaded()).put(key, body);
  }

  async create(key: string, body: Uint8Array): Promise<boolean> {
    return (await this.loaded()).create(key, body);
  }

  async get(key: string): Promise<Buffer> {
    return (await this.loaded()).get(key);
  }

  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    return (await this.loaded()).getRange(key, offset, length);
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    yield* (await this.loaded()).list(prefix);
  }

  async delete(keys: readonly string[]): Promise<void> {
    return (await this.loaded()).delete(keys);
  }

  async collectUnfinished(prefix: string, before: Date, dryRun?: boolean): Promise<string[]> {
    return (await this.loaded()).collectUnfinished(prefix, before, dryRun);
  }
}
