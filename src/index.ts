/** What applications that write to Chroma import from `vectorkeeper`. */
export { documentId, withLifecycle, type LifecycleOptions } from "./record-lifecycle.js";
