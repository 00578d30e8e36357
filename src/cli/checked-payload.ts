import { ConfigError } from "../config/config-error.js";
import { definitionOf } from "../queues/catalogue.js";
import type { ServedKind } from "../queues/served-kinds.js";
import { describeFlagIssues, flagOf, type FlagLabels } from "./job-flags.js";

/**
 * A restore names its target with `--to NAME` wherever it starts (`restore <backupId>`, `run restore`, `enqueue
 * restore`); in the payload, as for every kind, it is the `collection`.
 */
function withRestoreTarget(kind: ServedKind, payload: Record<string, unknown>): Record<string, unknown> {
  if (kind !== "restore") return payload;
  if (payload.collection !== undefined) throw new ConfigError("restore: name the collection to restore into with --to NAME, not --collection");
  const { to, ...rest } = payload;
  return to === undefined ? rest : { ...rest, collection: to };
}

/** Validates a payload built from flags; problems are named by the flag the user typed (`--sample: …`). */
export function checkedPayload(
  kind: ServedKind,
  flagPayload: Record<string, unknown>,
  labels: FlagLabels = {},
): Record<string, unknown> & { collection: string } {
  const payload = withRestoreTarget(kind, flagPayload);
  const names: FlagLabels = kind === "restore" ? { collection: "--to", ...labels } : labels;
  const schema = definitionOf(kind).payload;
  for (const field of Object.keys(payload)) {
    if (!(field in schema.shape)) throw new ConfigError(`${flagOf([field], names)} does not apply to ${kind}`);
  }
  const parsed = schema.safeParse(payload);
  if (!parsed.success) throw new ConfigError(`${kind}: ${describeFlagIssues(parsed.error.issues, payload, names)}`);
  return parsed.data as Record<string, unknown> & { collection: string };
}
