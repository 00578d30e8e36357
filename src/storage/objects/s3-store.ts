import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  PutObjectCommand,
  ListObjectsV2Command,
  S3Client,
  S3ServiceException,
  type S3ClientConfig,
} from "@aws-sdk/client-s3";
import { Upload } from "@aws-sdk/lib-storage";
import { ConfigError } from "../../config/config-error.js";
import { DEFAULTS, type NetworkOptions } from "../../config/defaults.js";
import { withRetries } from "../../retries.js";
import { ObjectNotFoundError, type ObjectStore, type StoredObject } from "./object-store.js";
import { s3Description, type S3Settings } from "./s3-settings.js";

// The SDK prints a multi-line notice on Node < 22 at its first request, which would break the CLI's one-line errors
// and JSON-lines logs; the README states the Node versions the SDK supports instead.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";

/** Part size of multipart uploads; chunks smaller than this go up in one request. */
const PART_SIZE = 8 * 1024 * 1024;

/** An answer whose body broke off (reset, truncated, stalled) after its headers arrived. */
class BodyCutShort extends Error {
  constructor(cause: unknown) {
    super(`the download broke off: ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
  }
}

const CREDENTIAL_ERRORS = new Set(["InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden", "InvalidToken", "ExpiredToken"]);

export class S3Store implements ObjectStore {
  readonly description: string;
  private readonly client: S3Client;
  private readonly root: string;

  private readonly network: NetworkOptions;

  constructor(private readonly settings: S3Settings) {
    this.network = { ...DEFAULTS.network, ...settings.network };
    const config: S3ClientConfig = {
      region: settings.region ?? process.env.AWS_REGION ?? "us-east-1",
      forcePathStyle: settings.forcePathStyle ?? false,
      maxAttempts: this.network.attempts,
      // Without these the SDK waits forever on a connection that stalls (issue 10): a stalled request is abandoned
      // once nothing has moved for idleTimeoutMs, and retried as a transient TimeoutError.
      requestHandler: { connectionTimeout: this.network.connectTimeoutMs, socketTimeout: this.network.idleTimeoutMs },
      // vectorkeeper checks every chunk's SHA-256 itself; the SDK's default trailing checksums (aws-chunked bodies)
      // are refused by several S3-compatible servers.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      ...(settings.endpoint ? { endpoint: settings.endpoint } : {}),
      ...(settings.credentials ? { credentials: settings.credentials } : {}),
    };
    this.client = new S3Client(config);
    this.root = settings.prefix ? `${settings.prefix}/` : "";
    this.description = s3Description(settings);
  }

  /** Turns the SDK's failures into errors that name the bucket, the endpoint and the fix. */
  private explain(error: unknown, key?: string): never {
    if (error instanceof S3ServiceException) {
      if (error.name === "NoSuchKey" || error.name === "NotFound") throw new ObjectNotFoundError(key ?? "?", this.description);
      if (error.name === "NoSuchBucket") {
        throw new ConfigError(`bucket "${this.settings.bucket}" does not exist (${this.description}); create it or fix BACKUP_URL`);
      }
      if (CREDENTIAL_ERRORS.has(error.name) || error.$metadata?.httpStatusCode === 403) {
        throw new ConfigError(
          `S3 refused the credentials for ${this.description} (${error.name}); check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_SHARED_CREDENTIALS_FILE or the profile`,
        );
      }
      throw new Error(`S3 error on ${this.description}${key ? ` for ${key}` : ""}: ${error.name}: ${error.message}`);
    }
    if (error instanceof ConfigError || error instanceof ObjectNotFoundError) throw error;
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    if (code === "ECONNREFUSED" || code === "ENOTFOUND" || code === "EAI_AGAIN") {
      throw new Error(`S3 endpoint does not answer (${code}) for ${this.description}; check S3_ENDPOINT and the network`);
    }
    // Socket-level failures ("read ECONNRESET", timeouts) carry no hint of where: name the store and the object.
    const reason = error instanceof Error ? error.message : String(error);
    throw new Error(`S3 request for ${key ?? "a listing"} on ${this.description} failed after ${this.network.attempts} attempts: ${reason}`, {
      cause: error,
    });
  }

  async put(key: string, body: Uint8Array): Promise<void> {
    // lib-storage switches to multipart above one part, retrying each part on its own. Its own abort on failure would
    // replace the part's error with the abort's (servers without abort answer MethodNotAllowed): abort here instead.
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.settings.bucket, Key: this.root + key, Body: body },
      partSize: PART_SIZE,
      queueSize: 2,
      leavePartsOnError: true,
    });
    try {
      await upload.done();
    } catch (error) {
      if (upload.uploadId) await this.abortUpload(this.root + key, upload.uploadId).catch(() => undefined);
      this.explain(error, key);
    }
  }

  /** A conditional PUT (`If-None-Match: *`): 412, or 409 for a racing one, means another writer's object stands. */
  async create(key: string, body: Uint8Array): Promise<boolean> {
    try {
      await this.client.send(new PutObjectCommand({ Bucket: this.settings.bucket, Key: this.root + key, Body: body, IfNoneMatch: "*" }));
      return true;
    } catch (error) {
      const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (status === 412 || status === 409) return false;
      // A server rejecting the condition (501 NotImplemented, 400): a plain put, which cannot refuse; callers read back
      // what stands. A 400 for another reason fails the put the same way, and is explained there.
      if (status === 501 || status === 400 || (error as { name?: string }).name === "NotImplemented") {
        await this.put(key, body);
        return true;
      }
      this.explain(error, key);
    }
  }

  private async abortUpload(key: string, uploadId: string): Promise<void> {
    await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.settings.bucket, Key: key, UploadId: uploadId }));
  }

  /**
   * A body cut short (reset or truncated mid-download) fails after the SDK's retries are spent, since the SDK retries
   * only until the headers arrive: the whole read is retried here, with backoff.
   */
  async get(key: string): Promise<Buffer> {
    return this.read(key, undefined);
  }

  /**
   * A Range GET: packs (format 4) are read chunk run by chunk run. An answer that is not the range asked for (a server
   * or proxy that ignores `Range` sends the whole object with 200) is refused in one line rather than sliced: slicing
   * would hide that every read of a pack downloads all of it.
   */
  async getRange(key: string, offset: number, length: number): Promise<Buffer> {
    return this.read(key, { offset, length });
  }

  private async read(key: string, range: { offset: number; length: number } | undefined): Promise<Buffer> {
    const asked = range ? `bytes=${range.offset}-${range.offset + range.length - 1}` : undefined;
    try {
      return await withRetries(
        this.network,
        async () => {
          const response = await this.client.send(
            new GetObjectCommand({ Bucket: this.settings.bucket, Key: this.root + key, ...(asked ? { Range: asked } : {}) }),
          );
          if (!response.Body) throw new ObjectNotFoundError(key, this.description);
          const body = await response.Body.transformToByteArray().catch((cause: unknown) => {
            throw new BodyCutShort(cause);
          });
          if (range) {
            // "bytes <first>-<last>/<size>": the server may end it early (a shorter object), never start elsewhere.
            const first = /^bytes (\d+)-\d+\/(\d+|\*)$/.exec(response.ContentRange ?? "")?.[1];
            if (first === undefined || Number(first) !== range.offset) {
              throw new ConfigError(
                `${this.description} ignored the Range of a read of ${key} (asked ${asked}, answered ${response.ContentRange ? `Content-Range ${response.ContentRange}` : `the whole object, ${body.length} bytes`}): packs are read by range; use a server or proxy that honours Range`,
              );
            }
          }
          return Buffer.from(body);
        },
        // The request itself was already retried by the SDK.
        (error) => error instanceof BodyCutShort,
      );
    } catch (error) {
      // A range that starts past the end: the object is shorter than asked, as a file read there would say.
      if (range && error instanceof S3ServiceException && error.$metadata?.httpStatusCode === 416) return Buffer.alloc(0);
      this.explain(error, key);
    }
  }

  /**
   * Multipart uploads under `prefix` started before `before` and never completed: a crash mid-upload leaves them,
   * invisible to listings but billed. Aborted here, page by page; a server that cannot list them (some S3-compatible
   * ones) yields none.
   */
  async collectUnfinished(prefix: string, before: Date, dryRun = false): Promise<string[]> {
    const aborted: string[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({ Bucket: this.settings.bucket, Prefix: this.root + prefix, KeyMarker: keyMarker, UploadIdMarker: uploadIdMarker }),
        );
      } catch (error) {
        if (error instanceof S3ServiceException && (error.name === "NotImplemented" || error.$metadata?.httpStatusCode === 501)) return aborted;
        this.explain(error);
      }
      for (const upload of page.Uploads ?? []) {
        // Without its start time an upload may be one running now: only one known to be old is aborted.
        if (!upload.Key || !upload.UploadId || !upload.Initiated || upload.Initiated >= before) continue;
        if (!dryRun) await this.abortUpload(upload.Key, upload.UploadId).catch((error: unknown) => this.explain(error, upload.Key));
        aborted.push(upload.Key.slice(this.root.length));
      }
      const more = page.IsTruncated === true && (page.NextKeyMarker !== keyMarker || page.NextUploadIdMarker !== uploadIdMarker);
      keyMarker = more ? page.NextKeyMarker : undefined;
      uploadIdMarker = more ? page.NextUploadIdMarker : undefined;
    } while (keyMarker !== undefined || uploadIdMarker !== undefined);
    return aborted;
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({ Bucket: this.settings.bucket, Prefix: this.root + prefix, ContinuationToken: token }),
        );
      } catch (error) {
        this.explain(error);
      }
      for (const object of page.Contents ?? []) {
        if (!object.Key) continue;
        yield { key: object.Key.slice(this.root.length), size: object.Size ?? 0, lastModified: object.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += 1000) {
      const batch = keys.slice(i, i + 1000);
      try {
        const result = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.settings.bucket,
            Delete: { Objects: batch.map((key) => ({ Key: this.root + key })), Quiet: true },
          }),
        );
        const failed = result.Errors?.[0];
        if (failed) throw new Error(`S3 could not delete ${failed.Key}: ${failed.Code} ${failed.Message}`);
      } catch (error) {
        this.explain(error);
      }
    }
  }
}
