import type { AlertState } from "../alerts/alert-state.js";
import type { NamedCollections } from "../scheduling/named-collections.js";
import type { ChromaStore } from "../storage/chroma.js";
import type { LastSuccessStore } from "./last-success.js";
import type { Metrics } from "./metrics.js";

export interface ForgetDeps {
  chroma: ChromaStore;
  metrics: Metrics;
  alertState: AlertState;
  lastSuccess: LastSuccessStore;
  named: NamedCollections;
}

/** Alert checks whose subject is not a collection. */
const SERVER_CHECKS = new Set(["chroma"]);

/**
 * Removes the series, alert states and last successes of collections that no longer exist, unless a schedule names
 * them literally (then their failing probe is the news). Nothing is forgotten while Chroma does not answer: an outage
 * is not a deletion. Returns the collections forgotten.
 */
export async function forgetGoneCollections(deps: ForgetDeps): Promise<string[]> {
  let existing: Set<string>;
  try {
    existing = new Set(await deps.chroma.listCollectionNames());
  } catch {
    return [];
  }
  const [named, subjects, successes] = await Promise.all([deps.named.read(), deps.alertState.subjects(), deps.lastSuccess.all()]);
  const candidates = new Set([
    ...deps.metrics.collections(),
    ...subjects.filter((s) => !SERVER_CHECKS.has(s.check)).map((s) => s.subject),
    ...successes.map((s) => s.collection),
  ]);
  const gone = new Set([...candidates].filter((name) => !existing.has(name) && !named.has(name)));
  deps.metrics.forget(gone);
  await deps.alertState.forget(gone);
  await deps.lastSuccess.forget(gone);
  return [...gone];
}
