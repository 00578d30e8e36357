import {
  ChromaClient,
  ChromaConnectionError,
  ChromaNotFoundError,
  type Collection,
  type CollectionMetadata,
  type EmbeddingFunction,
} from "chromadb";
import { chromaEndpoint, type ChromaEndpoint } from "../../config/chroma-endpoint.js";
import { DEFAULTS, type NetworkOptions } from "../../config/defaults.js";
import { collectionUrl } from "./api-url.js";
import { credentialsRefused, isRefusal } from "./credentials.js";
import { ChromaBulkGet, ChromaReadError } from "./bulk-get.js";
import { keepBasePath, limitChromaRequests, noAnswer } from "./fetch.js";
import { featuresOfApi, type ChromaFeature } from "./features.js";
import type { GetColumnsInput } from "./records.js";
import { ChromaNoAnswerError, ChromaRequestError, ChromaRest, type CollectionAnswer, type Preflight } from "./rest.js";
import type { WriteLimits } from "./writer.js";
import { createOptionsFrom } from "./collection-config.js";
import type { ProbeRequest } from "./latency-probe.js";
import { idsAt, readRecords, type GetRequest, type IdListing, type LinearReading } from "./linear-read.js";
import type { RecordColumns } from "./record-columns.js";
import { withRetries } from "../../retries.js";
import { ChromaUnavailableError, CollectionNotFoundError } from "./store-errors.js";

/** What may pass on a retry: anything but an answer of the server that refuses the request itself (4xx). */
const isPassing = (error: unknown) => !(error instanceof ChromaReadError) || error.status >= 500;

/** Where and as whom vectorkeeper talks to Chroma. */
export interface ChromaSettings {
  /** Timeouts and retries (tests shorten them); see {@link NetworkOptions}. */
  network?: Partial<NetworkOptions> | undefined;
  /**
   * The Chroma server: the endpoint the config made of CHROMA_URL and CHROMA_TOKEN, or a URL given in code (tests,
   * benchmarks), read as a CHROMA_URL without a token: `http(s)://host:port`, with the path it is served under behind
   * a gateway (`https://host/chroma/`) and the user and password a gateway's Basic auth wants (`https://ops:pw@host/`).
   */
  url: ChromaEndpoint | string;
  tenant: string;
  database: string;
  /** Request-body bytes a write may send at most. @defaultValue DEFAULTS.chroma.maxRequestBytes */
  maxRequestBytes?: number | undefined;
}

/** How a collection is saved in a backup and recreated from it. */
export interface SavedCollection {
  metadata: Record<string, unknown> | null;
  configuration: Record<string, unknown>;
  /** Chroma 1.2+: the index settings per key, verbatim as the server described them. */
  schema?: Record<string, unknown> | undefined;
}

/**
 * vectorkeeper only moves embeddings that already exist; it never embeds text. Handing the client this function
 * stops it from looking for (and warning about) the default embedding package on every collection it opens.
 */
const precomputedOnly: EmbeddingFunction = {
  name: "vectorkeeper-precomputed",
  generate: () => Promise.reject(new Error("vectorkeeper never embeds text: pass embeddings explicitly")),
};

// Also here, beside the store that throws them, where callers and tests look for them.
export { ChromaUnavailableError, CollectionNotFoundError };

export class ChromaStore {
  readonly client: ChromaClient;
  private readonly bulk: ChromaBulkGet;
  private readonly network: NetworkOptions;
  private readonly rest: ChromaRest;
  private readonly headers: Record<string, string>;
  /** CHROMA_URL without its credentials, which travel in `headers`: every request URL is built from this. */
  private readonly base: string;
  private preflightAnswer: Promise<Preflight> | undefined;
  private apiFeatures: Promise<Set<ChromaFeature> | undefined> | undefined;
  /** The server's URL as it may be shown (messages, logs, `/readyz`): credentials stripped. */
  readonly where: string;

  constructor(readonly settings: ChromaSettings) {
    const { base, headers, where } = typeof settings.url === "string" ? chromaEndpoint(settings.url) : settings.url;
    this.where = where;
    this.base = base;
    const url = new URL(base);
    const ssl = url.protocol === "https:";
    this.headers = headers;
    this.client = new ChromaClient({
      host: url.hostname,
      port: url.port ? Number(url.port) : ssl ? 443 : 80,
      ssl,
      tenant: settings.tenant,
      database: settings.database,
      headers,
    });
    keepBasePath(this.client, base);
    this.network = { ...DEFAULTS.network, ...settings.network };
    limitChromaRequests(this.client, {
      timeoutMs: this.network.chromaRequestTimeoutMs,
      // One retry: the client reports a refused connection and a broken one alike, and a server that is down (what
      // probes and /readyz must report quickly) should not cost seconds of backoff.
      attempts: Math.min(2, this.network.attempts),
      retryBaseMs: this.network.retryBaseMs,
      where: this.where,
      unavailable: (message) => new ChromaUnavailableError(message),
    });
    this.bulk = new ChromaBulkGet({
      url: base,
      headers,
      tenant: settings.tenant,
      database: settings.database,
      idleTimeoutMs: this.network.idleTimeoutMs,
    });
    this.rest = new ChromaRest({
      url: base,
      headers,
      tenant: settings.tenant,
      database: settings.database,
      timeoutMs: this.network.chromaRequestTimeoutMs,
      attempts: this.network.attempts,
      retryBaseMs: this.network.retryBaseMs,
    });
  }

  /** Reads a whole collection in linear time and memory (see `readRecords`) with the bulk reader, which spends far less CPU per page. */
  readPages(collection: Collection, reading: Omit<LinearReading, "get">): AsyncGenerator<RecordColumns> {
    return readRecords(collection, { ...reading, get: this.bulkGet });
  }

  /** Ids at positions of the collection's id listing (see `idsAt`), listed with the bulk reader. */
  idsAt(collection: Collection, positions: readonly number[], listing: Omit<IdListing, "get"> = {}): Promise<string[]> {
    return idsAt(collection, positions, { ...listing, get: this.bulkGet });
  }

  /** Reads are idempotent: a read that breaks off (reset, stall, a 5xx) is retried with backoff before it fails. */
  private readonly bulkGet = (c: Collection, request: GetRequest): Promise<GetColumnsInput> =>
    withRetries(this.network, () => this.bulk.get(c, request), isPassing).catch((error: unknown) => {
      if (error instanceof ChromaReadError && isRefusal(error.status)) throw credentialsRefused(this.where, error.status);
      if (error instanceof ChromaReadError && !isPassing(error)) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      const reason = error instanceof Error ? error.message : String(error);
      if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EHOSTUNREACH") {
        throw new ChromaUnavailableError(`Chroma stopped answering at ${this.where} (CHROMA_URL) while ${c.name} was read`);
      }
      // Node says only "socket hang up" or "read ECONNRESET": the server went away mid-request.
      if (code === "ECONNRESET" || code === "EPIPE" || /socket hang up|aborted/i.test(reason)) {
        throw new ChromaUnavailableError(
          `Chroma at ${this.where} (CHROMA_URL) closed the connection while ${c.name} was read (${reason}; ${this.network.attempts} attempts); is it still running?`,
        );
      }
      throw new ChromaUnavailableError(
        `reading ${c.name} from Chroma at ${this.where} (CHROMA_URL) failed after ${this.network.attempts} attempts: ${reason}`,
        { cause: error },
      );
    });

  /** The server's heartbeat; throws when it does not answer. */
  heartbeat(): Promise<number> {
    return this.reachable(() => this.client.heartbeat());
  }

  version(): Promise<string> {
    return this.reachable(() => this.client.version());
  }

  /** Turns the client's generic connection failure into one that says where vectorkeeper looked. */
  private async reachable<T>(call: () => Promise<T>): Promise<T> {
    try {
      return await call();
    } catch (error) {
      throw this.withOrigin(error);
    }
  }

  /**
   * The chromadb client says "Failed to connect to chromadb … CORS_ALLOW_ORIGINS" for any request that got no answer,
   * from any collection method; jobs call those directly, so their runners pass failures through here to name the
   * server and the variable that sets it. Anything else is returned as it is.
   */
  withOrigin(error: unknown): unknown {
    if (error instanceof ChromaConnectionError || error instanceof ChromaNoAnswerError) {
      return new ChromaUnavailableError(noAnswer(this.where));
    }
    if (error instanceof ChromaRequestError && isRefusal(error.status)) return credentialsRefused(this.where, error.status);
    return error;
  }

  /** Every collection name in the database, paging through the server's list. */
  async listCollectionNames(pageSize = 100): Promise<string[]> {
    const names: string[] = [];
    for (let offset = 0; ; offset += pageSize) {
      const page = await this.reachable(() => this.client.listCollections({ limit: pageSize, offset }));
      names.push(...page.map((c) => c.name));
      if (page.length < pageSize) return names;
    }
  }

  /** Opens a collection by name, with an error that names it when it does not exist. */
  async openCollection(name: string): Promise<Collection> {
    try {
      return await this.reachable(() => this.client.getCollection({ name, embeddingFunction: precomputedOnly }));
    } catch (error) {
      if (error instanceof ChromaNotFoundError || /does not exist|not found/i.test(String(error))) {
        throw new CollectionNotFoundError(
          `collection "${name}" does not exist in ${this.settings.tenant}/${this.settings.database} at ${this.where}`,
        );
      }
      throw error;
    }
  }

  /** Whether a collection of that name exists. */
  async exists(name: string): Promise<boolean> {
    try {
      await this.openCollection(name);
      return true;
    } catch (error) {
      if (error instanceof CollectionNotFoundError) return false;
      throw error;
    }
  }

  /** A collection as the server describes it, verbatim: metadata, configuration and (Chroma 1.2+) schema. */
  async describeCollection(name: string): Promise<CollectionAnswer> {
    await this.openCollection(name);
    return this.reachable(() => this.rest.describeCollection(name));
  }

  /**
   * Creates a collection configured like a saved one: with its schema verbatim where it has one (which holds the
   * distance space, HNSW settings and embedding function too: Chroma takes a schema or a configuration, not both);
   * else from its configuration (distance space, HNSW/SPANN, embedding function). Metadata either way.
   */
  async createLike(name: string, saved: SavedCollection): Promise<Collection> {
    if (saved.schema) {
      const schema = saved.schema;
      await this.reachable(() => this.rest.createCollection({ name, metadata: saved.metadata, schema }));
      return this.openCollection(name);
    }
    const { configuration, embeddingFunction } = createOptionsFrom(saved.configuration);
    return this.reachable(() =>
      this.client.createCollection({
        name,
        configuration,
        embeddingFunction,
        ...(saved.metadata ? { metadata: saved.metadata as CollectionMetadata } : {}),
      }),
    );
  }

  /** Creates a collection for bytes kept in records' metadata (blob-collection.ts): no embedding function, no settings. */
  createBlobCollection(name: string, metadata: CollectionMetadata): Promise<Collection> {
    return this.reachable(() => this.client.createCollection({ name, embeddingFunction: null, metadata }));
  }

  /**
   * Deletes a collection. Where the server keeps array metadata, its records are deleted first, a batch at a time:
   * local Chroma 1.4 leaves a deleted collection's array metadata behind, and records written later, in any
   * collection, inherit it (chroma-core/chroma#7594); deleting records removes theirs. Restore's staging and replaced
   * collections and drills' scratch copies are deleted this way, so none of their metadata reappears elsewhere.
   */
  async deleteCollection(name: string): Promise<void> {
    if ((await this.missingFeatures(["arrayMetadata"]))?.length === 0) await this.deleteRecords(name);
    await this.reachable(() => this.client.deleteCollection({ name }));
  }

  /** Deletes every record of a collection (if it exists), the first ids again and again: no offset to shift. */
  private async deleteRecords(name: string): Promise<void> {
    let collection: Collection;
    try {
      collection = await this.openCollection(name);
    } catch (error) {
      if (error instanceof CollectionNotFoundError) return;
      throw error;
    }
    const batch = await this.maxBatchSize();
    for (;;) {
      const { ids } = await this.reachable(() => collection.get({ limit: batch, include: [] }));
      if (ids.length === 0) return;
      await this.reachable(() => collection.delete({ ids }));
    }
  }

  /** The server's pre-flight answer (asked once). */
  private preflight(): Promise<Preflight> {
    this.preflightAnswer ??= this.reachable(() => this.rest.preflight());
    this.preflightAnswer.catch(() => (this.preflightAnswer = undefined));
    return this.preflightAnswer;
  }

  /** The server's largest accepted write batch. */
  async maxBatchSize(): Promise<number> {
    return (await this.preflight()).max_batch_size;
  }

  /** How much one write may carry: the server's batch size (or `records`, when smaller) and the request-body cap. */
  async writeLimits(records?: number): Promise<WriteLimits> {
    const preflight = await this.preflight();
    return {
      records: Math.min(records ?? preflight.max_batch_size, preflight.max_batch_size),
      bytes: this.settings.maxRequestBytes ?? DEFAULTS.chroma.maxRequestBytes,
      base64Embeddings: preflight.supports_base64_encoding ?? false,
    };
  }

  /**
   * Which of `features` this server cannot hold, from its API description; undefined when the server describes no
   * API (then nothing can be told before writing).
   */
  async missingFeatures(features: readonly ChromaFeature[]): Promise<ChromaFeature[] | undefined> {
    if (features.length === 0) return [];
    this.apiFeatures ??= this.reachable(() => this.rest.apiDescription()).then(featuresOfApi);
    this.apiFeatures.catch(() => (this.apiFeatures = undefined));
    const supported = await this.apiFeatures;
    return supported && features.filter((feature) => !supported.has(feature));
  }

  /** The server as messages name it (credentials in the URL redacted). */
  get description(): string {
    return `the Chroma at ${this.where}`;
  }

  /**
   * A nearest-neighbour query of the collection as a plain REST request (URL, headers, body), for a probe that runs on
   * a thread of its own (see LatencyProbe).
   */
  queryRequest(collection: Collection, embedding: readonly number[], nResults: number, timeoutMs: number): ProbeRequest {
    return {
      url: collectionUrl(this.base, this.settings, collection.id, "query").href,
      headers: this.headers,
      body: JSON.stringify({ query_embeddings: [embedding], n_results: nResults, include: ["distances"] }),
      timeoutMs,
    };
  }

  /** One stored embedding of the collection, or undefined when it is empty. */
  async sampleEmbedding(collection: Collection, offset = 0): Promise<number[] | undefined> {
    const page = await collection.get({ limit: 1, offset, include: ["embeddings"] });
    return page.embeddings[0] ?? undefined;
  }

  /**
   * Stored embeddings spread evenly over the whole collection (the record at the middle of each of `count` equal
   * stretches of its `size` records), found by one pass over its ids rather than one offset read per sample, which costs local Chroma a
   * skip over every earlier row each time.
   */
  async spreadEmbeddings(collection: Collection, count: number, size: number): Promise<number[][]> {
    const n = Math.min(count, size);
    const positions = Array.from({ length: n }, (_, i) => Math.floor(((i + 0.5) * size) / n));
    const ids = await this.idsAt(collection, positions);
    if (ids.length === 0) return [];
    const page = await collection.get({ ids, include: ["embeddings"] });
    return page.embeddings.filter((e): e is number[] => Array.isArray(e));
  }
}
