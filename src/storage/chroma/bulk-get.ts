import { isAscii } from "node:buffer";
import http from "node:http";
import https from "node:https";
import { z } from "zod";
import { collectionUrl } from "./api-url.js";
import type { GetColumnsInput } from "./records.js";
import type { GetRequest } from "./linear-read.js";

/** Where and as whom the bulk reader talks to Chroma (the same settings the client uses). */
export interface BulkGetTarget {
  /** The server's base URL (CHROMA_URL), credentials stripped into `headers`. */
  url: string;
  /** A request during which nothing moves for this long is abandoned. */
  idleTimeoutMs: number;
  /** Sent with every request: authentication and the client's own headers. */
  headers: Record<string, string>;
  /** The tenant and database the collections live in. */
  tenant: string;
  database: string;
}

/**
 * The envelope of a `get` answer. Embedding rows are checked as they are packed into floats: a schema over every
 * number of a page would cost as much as parsing it.
 */
const getAnswer = z.object({
  ids: z.array(z.string()),
  embeddings: z.array(z.unknown()).nullable().optional(),
  documents: z.array(z.string().nullable()).nullable().optional(),
  metadatas: z.array(z.record(z.string(), z.unknown()).nullable()).nullable().optional(),
  uris: z.array(z.string().nullable()).nullable().optional(),
});

/** Chroma answered a bulk read with an error status; the message is the server's own. */
export class ChromaReadError extends Error {
  override readonly name = "ChromaReadError";
  constructor(
    message: string,
    /** The HTTP status Chroma answered with (0 when the answer was not Chroma's). */
    readonly status: number,
  ) {
    super(message);
  }
}

/**
 * Chroma's `get` (v2 API) over node:http, for the reads that move whole collections. The chromadb client reads an
 * answer through web streams and a TextDecoder before JSON.parse, which costs a backup more CPU than all of its own
 * work, and on a small machine that CPU is taken from the Chroma server. This collects the body into one Buffer and
 * decodes it as Latin-1 when it is pure ASCII (then the same text, at a fraction of the cost).
 */
export class ChromaBulkGet {
  private readonly agent: http.Agent;
  private readonly base: URL;

  // Idle kept-alive sockets do not hold the process open: Node unrefs them.
  constructor(private readonly target: BulkGetTarget) {
    this.base = new URL(target.url);
    this.agent = this.base.protocol === "https:" ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  }

  /** One `get` (a window of ids, or records by id); bound, so it can be handed on as `get`. */
  readonly get = (collection: { id: string }, request: GetRequest): Promise<GetColumnsInput> => {
    const body = JSON.stringify(request);
    return this.post(collectionUrl(this.target.url, this.target, collection.id, "get"), body).then((text) => {
      const parsed = getAnswer.safeParse(JSON.parse(text));
      if (!parsed.success) throw new ChromaReadError(`Chroma's get answer is malformed at ${parsed.error.issues[0]?.path.join(".")}`, 0);
      return parsed.data as GetColumnsInput;
    });
  };

  private post(url: URL, body: string): Promise<string> {
    const request = this.base.protocol === "https:" ? https.request : http.request;
    return new Promise((resolve, reject) => {
      const req = request(
        url,
        {
          method: "POST",
          agent: this.agent,
          headers: { ...this.target.headers, "content-type": "application/json", "content-length": Buffer.byteLength(body) },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("error", reject);
          res.on("end", () => {
            const bytes = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
            const text = isAscii(bytes) ? bytes.toString("latin1") : bytes.toString("utf8");
            const status = res.statusCode ?? 0;
            if (status >= 200 && status < 300) return resolve(text);
            reject(new ChromaReadError(`Chroma answered ${status} to get: ${errorMessage(text)}`, status));
          });
        },
      );
      req.on("error", reject);
      // A server that stalls mid-answer would otherwise hold the read (and the backup's lease) forever.
      req.setTimeout(this.target.idleTimeoutMs, () => {
        req.destroy(Object.assign(new Error(`no answer for ${this.target.idleTimeoutMs} ms`), { code: "ETIMEDOUT" }));
      });
      req.end(body);
    });
  }
}

function errorMessage(text: string): string {
  try {
    const answer = z.object({ message: z.string().optional(), error: z.string().optional() }).parse(JSON.parse(text));
    return answer.message ?? answer.error ?? text.slice(0, 200);
  } catch {
    return text.slice(0, 200);
  }
}
