import { recordFeatures, type ChromaFeature } from "../chroma/features.js";
import type { RecordColumns } from "../chroma/record-columns.js";

/**
 * What a backup writer has put into a backup so far, whichever format it writes: the figures a backup's result and
 * manifest report.
 */
export class WriteTally {
  records = 0;
  /** Logical size: every chunk the backup lists, and its manifest, whether uploaded now or before. */
  bytes = 0;
  /** What this run wrote to the store, as stored (encrypted objects with their envelope). */
  uploadedBytes = 0;
  /** Chunks the store already held (from earlier backups, or earlier in this one), not uploaded again. */
  reusedChunks = 0;
  /** What the records written so far hold that not every server can (for the manifest's `features`). */
  readonly features = new Set<ChromaFeature>();
  /** The pages' embedding dimension (the last page's). */
  protected dimension = 0;

  /** Notes a page's dimension and features before its records are written. */
  protected notePage(page: RecordColumns): void {
    this.dimension = page.dimension;
    for (const feature of recordFeatures(page.metadatas, page.uris)) this.features.add(feature);
  }
}
