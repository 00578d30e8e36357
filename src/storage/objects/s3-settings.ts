import type { NetworkOptions } from "../../config/defaults.js";
import { redactUrl } from "../../redact.js";

/** How vectorkeeper reaches an S3-compatible service; credentials come from the AWS SDK's usual chain. */
export interface S3Settings {
  bucket: string;
  /** Key prefix inside the bucket, without leading or trailing `/` ("" for the bucket's root). */
  prefix: string;
  endpoint?: string | undefined;
  region?: string | undefined;
  forcePathStyle?: boolean;
  /** Timeouts and attempts per request (the SDK backs off exponentially between them); see {@link NetworkOptions}. */
  network?: Partial<NetworkOptions>;
  /** Explicit credentials (tests); otherwise the SDK's chain (env, profile, instance role). */
  credentials?: { accessKeyId: string; secretAccessKey: string };
}

/** Where an S3 store stores, for messages and logs (no credentials). */
export function s3Description(settings: Pick<S3Settings, "bucket" | "prefix" | "endpoint">): string {
  return `s3://${settings.bucket}/${settings.prefix}${settings.endpoint ? ` at ${redactUrl(settings.endpoint)}` : ""}`;
}
