import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { ChromaConnectionError, ChromaForbiddenError, ChromaUnauthorizedError } from "chromadb";
import { z } from "zod";
import { withRetries } from "../../retries.js";
import { chromaApiUrl } from "./api-url.js";
import { credentialsRefused } from "./credentials.js";

class RequestTimedOut extends Error {}

type Fetch = (request: Request) => Promise<Response>;

/**
 * The part of the chromadb client's internal HTTP client (hey-api's, shared by the collections the client opens) that
 * vectorkeeper changes: its fetch, wrapped with limits, and its base URL, which keeps CHROMA_URL's path.
 */
export interface ChromaHttpClient {
  getConfig(): { fetch?: Fetch; baseUrl?: string };
  setConfig(config: { fetch?: Fetch; baseUrl?: string }): unknown;
}

/**
 * The chromadb releases whose client has that HTTP client, as package.json pins them: it is private
 * (`private readonly apiClient`), so a minor release may rename it, and chromadb 3.x offers no public way to either
 * keep a base path or wrap fetch (`fetchOptions` cannot set the base; `path` keeps only protocol, host and port).
 */
export const SUPPORTED_CHROMADB = "~3.5.0";

/**
 * The chromadb client's private HTTP client: the one place that reaches into it. Fails loudly on a chromadb without
 * one of that shape, rather than losing timeouts or CHROMA_URL's path without a word.
 */
export function chromaHttpClient(client: object): ChromaHttpClient {
  const api: unknown = Reflect.get(client, "apiClient");
  if (typeof api === "object" && api !== null) {
    const { getConfig, setConfig } = api as Record<string, unknown>;
    if (typeof getConfig === "function" && typeof setConfig === "function") return api as ChromaHttpClient;
  }
  throw new Error(
    `chromadb ${installedChromadb()} has no private HTTP client (apiClient with getConfig/setConfig), which vectorkeeper ` +
      `wraps for timeouts and CHROMA_URL's path; install chromadb ${SUPPORTED_CHROMADB} as package.json pins it (npm ci)`,
  );
}

/**
 * Points a chromadb client at CHROMA_URL's path too: the client builds its base from host and port alone, so behind a
 * gateway its calls would go to the gateway's root. `base` carries no user info (see chromaEndpoint): fetch refuses a
 * URL with credentials. The client reads its base at each request, and its collections share its HTTP client.
 */
export function keepBasePath(client: object, base: string): void {
  // The client appends `/api/v2/…` to its base itself: the base without a trailing slash.
  chromaHttpClient(client).setConfig({ baseUrl: chromaApiUrl(base, "").href.replace(/\/$/, "") });
}

/** The installed chromadb's version, for the message above (its package.json is not among its exports). */
function installedChromadb(): string {
  try {
    let dir = dirname(createRequire(import.meta.url).resolve("chromadb"));
    for (; dir !== dirname(dir); dir = dirname(dir)) {
      const file = join(dir, "package.json");
      if (!existsSync(file)) continue;
      const manifest = z.object({ name: z.string(), version: z.string() }).safeParse(JSON.parse(readFileSync(file, "utf8")));
      if (manifest.success && manifest.data.name === "chromadb") return manifest.data.version;
    }
  } catch {
    // Only the message loses the version.
  }
  return "(version unknown)";
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
 */
export function limitChromaRequests(client: object, options: ChromaRequestLimits): void {
  const api = chromaHttpClient(client);
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
}
