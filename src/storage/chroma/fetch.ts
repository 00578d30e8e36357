import { ChromaConnectionError, ChromaForbiddenError, ChromaUnauthorizedError, type ChromaClient } from "chromadb";
import { withRetries } from "../../retries.js";
import { credentialsRefused } from "./credentials.js";

class RequestTimedOut extends Error {}

/** The part of the chromadb client's internal HTTP client that lets its fetch be wrapped. */
interface ApiClient {
  getConfig(): { fetch?: (request: Request) => Promise<Response> };
  setConfig(config: { fetch: (request: Request) => Promise<Response> }): unknown;
}

function isApiClient(value: unknown): value is ApiClient {
  if (typeof value !== "object" || value === null) return false;
  const candidate = value as Record<string, unknown>;
  return typeof candidate.getConfig === "function" && typeof candidate.setConfig === "function";
}

/** What a request that got no answer at all says: the server, and the variable that sets it. */
export const noAnswer = (where: string): string =>
  `Chroma does not answer at ${where} (CHROMA_URL): start it, or point CHROMA_URL at a running server`;

/** How {@link limitChromaRequests} limits a client's requests. */
export interface ChromaRequestLimits {
  /** How long one request may take before it is abandoned. */
  timeoutMs: number;
  /** Reads whose connection broke are sent again: attempts in all. */
  attempts: number;
  /** The first delay before a read is sent again, doubled on each further attempt. */
  retryBaseMs: number;
  /** The server as failures name it (its redacted URL). */
  where: string;
  /** Makes the error a request that got no answer throws (the store's ChromaUnavailableError). */
  unavailable: (message: string) => Error;
}

/**
 * Gives every request of a chromadb client (and of the collections it opens, which share its HTTP client) a time
 * limit, and failures that say where: the client itself waits forever on a server that accepted the connection and
 * never answers, and reports any broken connection as "Failed to connect to chromadb … CORS_ALLOW_ORIGINS".
 * The client keeps its HTTP client private, hence the shape check: a client without it is left as it is, and the
 * tests (which stall a real Chroma behind a proxy) notice.
 */
export function limitChromaRequests(client: ChromaClient, options: ChromaRequestLimits): boolean {
  const api: unknown = Reflect.get(client, "apiClient");
  if (!isApiClient(api)) return false;
  const original = api.getConfig().fetch ?? ((request: Request) => fetch(request));
  const once = (request: Request) => {
    const timeout = AbortSignal.timeout(options.timeoutMs);
    return original(new Request(request, { signal: timeout })).catch((error: unknown) => {
      throw timeout.aborted ? new RequestTimedOut() : error;
    });
  };
  api.setConfig({
    fetch: async (request: Request) => {
      // Reads may be sent again when the connection broke (a restarting server); writes and hung requests are not.
      const read = request.method === "GET" || /\/(get|query)$/.test(new URL(request.url).pathname);
      try {
        return read
          ? await withRetries(options, () => once(request.clone()), (error) => error instanceof ChromaConnectionError)
          : await once(request);
      } catch (error) {
        const what = `${request.method} ${new URL(request.url).pathname}`;
        if (error instanceof RequestTimedOut) {
          throw options.unavailable(`Chroma at ${options.where} did not answer ${what} within ${options.timeoutMs} ms`);
        }
        if (error instanceof ChromaConnectionError) {
          throw options.unavailable(noAnswer(options.where));
        }
        // The client's own message is a bare "Unauthorized", naming neither the server nor what to fix.
        if (error instanceof ChromaUnauthorizedError) throw credentialsRefused(options.where, 401);
        if (error instanceof ChromaForbiddenError) throw credentialsRefused(options.where, 403);
        throw error;
      }
    },
  });
  return true;
}
