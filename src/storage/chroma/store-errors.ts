import { ConfigError } from "../../config/config-error.js";

// Apart from client.ts so that code telling these errors apart (a job's schema module graph, which the CLI loads to
// check flags) does not load the chromadb client with them.

/** Thrown when a collection named by the user is not on the server. */
export class CollectionNotFoundError extends ConfigError {}

/** Chroma does not answer at all; the message names the URL and the variable that sets it. */
export class ChromaUnavailableError extends Error {
  override readonly name = "ChromaUnavailableError";
}
