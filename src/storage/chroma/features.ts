import { z } from "zod";

/**
 * What a collection may hold that not every Chroma server can: a backup records which of these it uses, so a restore
 * can tell before writing anything whether its target server can hold them.
 */
export const CHROMA_FEATURES = ["schema", "arrayMetadata", "uris"] as const;
export type ChromaFeature = (typeof CHROMA_FEATURES)[number];

/** How a feature is named in messages, and the server that has it. */
export const FEATURE_LABELS: Record<ChromaFeature, string> = {
  schema: "a collection schema (index settings per key; Chroma 1.2+)",
  arrayMetadata: "array metadata values (recent Chroma servers)",
  uris: "record URIs",
};

const property = z.object({ properties: z.record(z.string(), z.unknown()).optional() }).loose();
const openApi = z
  .object({
    components: z.object({
      schemas: z
        .object({
          CreateCollectionPayload: property.optional(),
          AddCollectionRecordsPayload: property.optional(),
          HashMap: z
            .object({ additionalProperties: z.object({ oneOf: z.array(z.record(z.string(), z.unknown())).optional() }).loose().optional() })
            .loose()
            .optional(),
        })
        .loose(),
    }),
  })
  .loose();

/**
 * The features a server's API description (`/openapi.json`) shows it accepts: `schema` in a create-collection request,
 * arrays among metadata values, `uris` in an add request. `/api/v2/version` cannot tell (it answers "1.0.0" on 1.0.5
 * and on 1.4 alike); the API description changes with what the server deserializes. Undefined when it is unreadable.
 */
export function featuresOfApi(document: unknown): Set<ChromaFeature> | undefined {
  const parsed = openApi.safeParse(document);
  if (!parsed.success) return undefined;
  const schemas = parsed.data.components.schemas;
  const features = new Set<ChromaFeature>();
  if (schemas.CreateCollectionPayload?.properties?.schema !== undefined) features.add("schema");
  if (schemas.AddCollectionRecordsPayload?.properties?.uris !== undefined) features.add("uris");
  if (schemas.HashMap?.additionalProperties?.oneOf?.some((variant) => variant.type === "array")) features.add("arrayMetadata");
  return features;
}

/** The features some records use: metadata values that are arrays, URIs. */
export function recordFeatures(metadatas: readonly (Record<string, unknown> | null)[], uris: readonly (string | null)[]): ChromaFeature[] {
  const found: ChromaFeature[] = [];
  if (uris.some((uri) => uri !== null)) found.push("uris");
  if (metadatas.some((metadata) => metadata !== null && Object.values(metadata).some(Array.isArray))) found.push("arrayMetadata");
  return found;
}
