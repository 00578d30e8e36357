import type { ChromaClient, Metadata } from "chromadb";

/** The bench's records, generated deterministically in batches so any process can rebuild the same ones. */
export interface RecordBatch {
  ids: string[];
  embeddings: number[][];
  documents: string[];
  metadatas: Metadata[];
}

export function recordBatch(start: number, count: number, dimension: number): RecordBatch {
  let state = (start * 2654435761) >>> 0 || 1;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 2 ** 32 - 0.5;
  };
  const ids: string[] = [];
  const embeddings: number[][] = [];
  const documents: string[] = [];
  const metadatas: Metadata[] = [];
  for (let i = start; i < start + count; i++) {
    ids.push(`v1_doc${Math.floor(i / 10)}_${i % 10}`);
    embeddings.push(Array.from({ length: dimension }, next));
    documents.push(`Chunk ${i % 10} of document ${Math.floor(i / 10)}: a paragraph of text about product ${i % 977}.`);
    // Every other record expired long ago (2001), the rest expire in 2096: half a collection for expire to delete.
    metadatas.push({
      source: `doc${Math.floor(i / 10)}`,
      chunk: i % 10,
      _created_at: 1_760_000_000_000 + i,
      _expires_at: i % 2 === 0 ? 1_000_000_000_000 : 4_000_000_000_000,
    });
  }
  return { ids, embeddings, documents, metadatas };
}

/** Chroma's cap on a request body (40 MiB), less room for the JSON around the records. */
const BODY_BUDGET = 36 * 1024 * 1024;

/**
 * Records per `add` that the server accepts: at most its `max_batch_size`, and few enough that the body stays under
 * its 40 MiB cap (embeddings go as base64 float32, 5⅓ characters a float, where the server supports it, else as JSON
 * numbers of up to ~24 characters).
 */
export async function acceptedBatch(client: ChromaClient, dimension: number): Promise<number> {
  const bytesPerFloat = (await client.supportsBase64Encoding()) ? 16 / 3 + 0.01 : 24;
  const sample = recordBatch(0, 1, 0);
  const perRecord = Math.ceil(dimension * bytesPerFloat) + JSON.stringify(sample).length + 64;
  return Math.max(1, Math.min(await client.getMaxBatchSize(), Math.floor(BODY_BUDGET / perRecord)));
}
