/**
 * Every job kind vectorkeeper knows by name (design.md §3). A kind is served only once its processor
 * exists in src/jobs/ and is listed in the catalogue; the name list is kept apart so that config can
 * validate per-kind settings without importing processors.
 */
export const JOB_KINDS = ["backup", "restore", "verify", "prune", "expire", "archive", "lint", "warm", "probe", "recall", "tune", "drill", "reindex"] as const;

export type JobKind = (typeof JOB_KINDS)[number];
