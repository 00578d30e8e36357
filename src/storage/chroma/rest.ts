import { z } from "zod";
import { withRetries } from "../../retries.js";
import { chromaApiUrl, collectionUrl } from "./api-url.js";
import { isRefusal } from "./credentials.js";

/** Where and as whom the REST calls go (the same settings the client uses). */
export interface ChromaRestTarget {
  /** The server's base URL (CHROMA_URL), credentials stripped into `headers`. */
  url: string;
  /** Sent with every call: authentication and the client's own headers. */
  headers: Record<string, string>;
  /** The tenant and database the collections live in. */
  tenant: string;
  database: string;
  /** How long one call may take. */
  timeoutMs: number;
  /** Reads (GET) are sent again, with backoff, when no answer came: attempts in all. */
  attempts: number;
  /** The first delay before a read is sent again, doubled on each further attempt. */
  retryBaseMs: number;
}

/** Chroma answered a REST call with an error status; the message is the server's own. */
export class ChromaRequestError extends Error {
  override readonly name = "ChromaRequestError";
  constructor(
    message: string,
    readonly status: number,
  ) {
    super(message);
  }
}

/** The server did not answer a REST call at all (refused, unreachable, timed out). */
export class ChromaNoAnswerError extends Error {
  override readonly name = "ChromaNoAnswerError";
  constructor(
    message: string,
    /** It hung until the time limit (never sent again) rather than failing at once. */
    readonly timedOut: boolean,
  ) {
    super(message);
  }
}

/** A collection as the v2 API describes it, with what vectorkeeper keeps of it verbatim. */
export const collectionAnswer = z
  .object({
    id: z.string(),
    name: z.string(),
    metadata: z.record(z.string(), z.unknown()).nullable().optional(),
    configuration_json: z.record(z.string(), z.unknown()).nullable().optional(),
    /** Chroma 1.2+: the index settings per value type and key. */
    schema: z.record(z.string(), z.unknown()).nullable().optional(),
  })
  .loose();
export type CollectionAnswer = z.output<typeof collectionAnswer>;

const preflightAnswer = z.object({ max_batch_size: z.number().int().positive(), supports_base64_encoding: z.boolean().optional() }).loose();
export type Preflight = z.output<typeof preflightAnswer>;

/**
 * The few v2 REST calls made beside the chromadb client, where the client would change what passes through: it
 * rebuilds a collection's schema into its own classes (dropping what it does not model), and it does not expose the
 * server's API description.
 */
export class ChromaRest {
  constructor(private readonly target: ChromaRestTarget) {}

  /** A collection's description verbatim, schema included when the server has one. */
  async describeCollection(name: string): Promise<CollectionAnswer> {
    return collectionAnswer.parse(await this.call("GET", collectionUrl(this.target.url, this.target, name)));
  }

  /** Creates a collection from a saved description: with its schema as saved (Chroma refuses a schema beside a configuration). */
  async createCollection(body: { name: string; metadata: Record<string, unknown> | null; schema: Record<string, unknown> }): Promise<CollectionAnswer> {
    return collectionAnswer.parse(await this.call("POST", collectionUrl(this.target.url, this.target), body));
  }

  async preflight(): Promise<Preflight> {
    return preflightAnswer.parse(await this.call("GET", chromaApiUrl(this.target.url, "api/v2/pre-flight-checks")));
  }

  /** The server's API description, or undefined when it serves none. */
  async apiDescription(): Promise<unknown> {
    try {
      return await this.call("GET", chromaApiUrl(this.target.url, "openapi.json"));
    } catch (error) {
      // A refusal is not "none served": it is reported as the credentials' fault.
      if (error instanceof ChromaRequestError && !isRefusal(error.status)) return undefined;
      throw error;
    }
  }

  /** GETs are idempotent: one whose connection failed (a restarting server) is sent again; a hung one is not. */
  private call(method: "GET" | "POST", url: URL, body?: unknown): Promise<unknown> {
    if (method === "POST") return this.once(method, url, body);
    return withRetries(this.target, () => this.once(method, url), (error) => error instanceof ChromaNoAnswerError && !error.timedOut);
  }

  private async once(method: "GET" | "POST", url: URL, body?: unknown): Promise<unknown> {
    const path = url.pathname;
    let response: Response;
    let text: string;
    try {
      response = await fetch(url, {
        method,
        headers: { ...this.target.headers, ...(body === undefined ? {} : { "content-type": "application/json" }) },
        ...(body === undefined ? {} : { body: JSON.stringify(body) }),
        signal: AbortSignal.timeout(this.target.timeoutMs),
      });
      text = await response.text();
    } catch (error) {
      const timedOut = error instanceof Error && error.name === "TimeoutError";
      throw new ChromaNoAnswerError(`${method} ${path}: ${timedOut ? `no answer within ${this.target.timeoutMs} ms` : "no answer"}`, timedOut);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    if (!response.ok) {
      const message = z.object({ message: z.string() }).safeParse(parsed);
      throw new ChromaRequestError(`Chroma answered ${response.status} to ${method} ${path}: ${message.success ? message.data.message : text.slice(0, 200)}`, response.status);
    }
    if (parsed === undefined) throw new ChromaRequestError(`Chroma's answer to ${method} ${path} is not JSON`, response.status);
    return parsed;
  }
}
