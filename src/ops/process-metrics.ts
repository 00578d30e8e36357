import { collectDefaultMetrics, type Registry } from "prom-client";

/**
 * prom-client's process and Node.js metrics under the `vectorkeeper_` prefix, without its three gauges named `…_total`
 * (`nodejs_active_handles_total` and kin), which `promtool check metrics` rejects and which repeat the unsuffixed
 * gauges beside them.
 */
export function registerProcessMetrics(registry: Registry): void {
  collectDefaultMetrics({ register: registry, prefix: "vectorkeeper_" });
  for (const name of ["handles", "requests", "resources"]) registry.removeSingleMetric(`vectorkeeper_nodejs_active_${name}_total`);
}
