import type { JobKind } from "./kinds.js";

/**
 * The job kinds this build serves, by name only: what the CLI's help and its kind check need, without loading the
 * processors and all they import (catalogue.ts holds those, one entry per name here, checked by its type).
 */
export const SERVED_KINDS = [
  "backup",
  "restore",
  "verify",
  "prune",
  "expire",
  "archive",
  "lint",
  "warm",
  "probe",
  "recall",
  "tune",
  "drill",
  "reindex",
] as const satisfies readonly JobKind[];

export type ServedKind = (typeof SERVED_KINDS)[number];

export function isServedKind(kind: string): kind is ServedKind {
  return (SERVED_KINDS as readonly string[]).includes(kind);
}

/** The queue of a kind is named after it; `VK_QUEUE_PREFIX` keeps environments apart. */
export function queueName(kind: ServedKind): string {
  return kind;
}

/** A user-facing error for a kind this build does not serve. */
export function unknownKindMessage(kind: string): string {
  return `unknown job kind "${kind}": this build runs ${SERVED_KINDS.join(", ")}`;
}
