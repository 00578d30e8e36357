import type { CreateCollectionConfiguration, EmbeddingFunction } from "chromadb";

/**
 * Rebuilds the create-time configuration of a collection from the configuration Chroma reported when it was backed
 * up: distance space and HNSW parameters (or SPANN), and the embedding function's declared config, so a restored
 * collection is configured like the original.
 */
export interface CreateOptions {
  configuration: CreateCollectionConfiguration;
  /** null: the original declared no embedding function. */
  embeddingFunction: EmbeddingFunction | null;
}

const present = (value: unknown): value is Record<string, unknown> => typeof value === "object" && value !== null;

const withoutNulls = (record: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(record).filter(([, value]) => value !== null && value !== undefined));

/**
 * The client serializes an embedding function as `{name, type: "known", config}` when it has `name`, `getConfig` and
 * a static `buildFromConfig`; as `{type: "legacy"}` otherwise. These stand-ins reproduce exactly what was saved,
 * without needing the embedding package installed (vectorkeeper never embeds).
 */
function savedEmbeddingFunction(saved: Record<string, unknown>): EmbeddingFunction {
  const refuse = () => Promise.reject(new Error("vectorkeeper never embeds text: pass embeddings explicitly"));
  if (saved.type === "known" && typeof saved.name === "string") {
    const config = present(saved.config) ? saved.config : {};
    class SavedKnownFunction {
      static buildFromConfig() {
        return new SavedKnownFunction();
      }
      readonly name = saved.name as string;
      generate = refuse;
      getConfig() {
        return config;
      }
    }
    return new SavedKnownFunction();
  }
  return { generate: refuse };
}

export function createOptionsFrom(saved: Record<string, unknown>): CreateOptions {
  const configuration: CreateCollectionConfiguration = {};
  if (present(saved.hnsw)) configuration.hnsw = withoutNulls(saved.hnsw);
  if (present(saved.spann)) configuration.spann = withoutNulls(saved.spann);
  const ef = saved.embedding_function;
  return { configuration, embeddingFunction: present(ef) ? savedEmbeddingFunction(ef) : null };
}
