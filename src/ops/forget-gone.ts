import type { AlertState } from "../alerts/alert-state.js";
import type { NamedCollections } from "../scheduling/named-collections.js";
import type { ChromaStore } from "../storage/chroma/client.js";
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
 * is not a deletion. A collection is forgotten only when two passes in a row did not list it: one listing can miss a
 * live collection (its pages shift while other collections are deleted).
 */
export class GoneCollections {
  /** Collections the previous pass did not list. */
  private missingLastPass = new Set<string>();

  constructor(private readonly deps: ForgetDeps) {}

  /** One pass; returns the collections forgotten. */
  async forget(): Promise<string[]> {
    const deps = this.deps;
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
    const missing = new Set([...candidates].filter((name) => !existing.has(name) && !named.has(name)));
    const gone = new Set([...missing].filter((name) => this.missingLastPass.has(name)));
    this.missingLastPass = missing;
    deps.metrics.forget(gone);
    await deps.alertState.forget(gone);
    await deps.lastSuccess.forget(gone);
    return [...gone];
  }
}
