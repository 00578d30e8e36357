import { z } from "zod";
import { DEFAULTS } from "../config/defaults.js";

const d = DEFAULTS.recall;

/** Payload fields of the jobs that measure recall (recall, tune). */
export const recallFields = {
  /** recall@k: neighbours compared per query. */
  k: z.number().int().min(1).max(100).default(d.k),
  /** Queries drawn at random from the collection. */
  queries: z.number().int().min(1).max(10_000).default(d.queries),
  /** Queries searched exactly per read of the collection. */
  queryBatch: z.number().int().min(1).max(100_000).default(d.queryBatch),
};
