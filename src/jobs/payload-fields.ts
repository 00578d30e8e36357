import { z } from "zod";

/** Chroma's own rule for collection names, checked before any request is made. */
export const collectionName = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{1,510}[A-Za-z0-9]$/, {
    message: "must be 3-512 characters of letters, digits, '.', '_' or '-', starting and ending with a letter or digit",
  });

/** A metadata key vectorkeeper reads (an expiry or creation time). */
export const metadataField = z.string().min(1).max(256).regex(/^[^$]/, { message: "must not start with '$' (an operator)" });

/** Alert after this many consecutive failures of this job on this collection (else the configured default). */
export const alertAfterFailures = z.number().int().min(1).max(1000).optional();
