import type { ChromaStore } from "../../src/storage/chroma/client.js";
import { RECORD_FIELDS } from "../../src/storage/chroma/linear-read.js";

/** Every record of a collection as one comparable line, sorted by id. */
export async function contents(chroma: ChromaStore, name: string): Promise<string[]> {
  const collection = await chroma.openCollection(name);
  const lines: string[] = [];
  for await (const page of chroma.readPages(collection, { pageSize: 500, readAhead: 1, include: RECORD_FIELDS })) {
    page.ids.forEach((id, i) => {
      const metadata = page.metadatas[i];
      const sorted = metadata ? Object.keys(metadata).sort().map((key) => [key, metadata[key]]) : null;
      lines.push(JSON.stringify([id, page.documents[i], sorted, Array.from(page.embeddings.subarray(i * page.dimension, (i + 1) * page.dimension))]));
    });
  }
  return lines.sort();
}

