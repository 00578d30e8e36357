import { promisify } from "node:util";
import zlib from "node:zlib";

/**
 * Chunk compression. gzip everywhere; zstd where the runtime's zlib has it (Node 22.15+/23.8+), chosen per backup
 * and recorded in its manifest so any reader knows how to open each chunk.
 */
export const COMPRESSIONS = ["gzip", "zstd", "none"] as const;
export type Compression = (typeof COMPRESSIONS)[number];

type Codec = (input: Uint8Array) => Promise<Buffer>;

interface ZstdZlib {
  zstdCompress?: (input: Uint8Array, callback: (error: Error | null, result: Buffer) => void) => void;
  zstdDecompress?: (input: Uint8Array, callback: (error: Error | null, result: Buffer) => void) => void;
}
const zstd = zlib as unknown as ZstdZlib;

export const zstdAvailable = typeof zstd.zstdCompress === "function" && typeof zstd.zstdDecompress === "function";

// Level 1: embeddings are near-random floats that gain little from harder work, and the async codecs run on the
// libuv pool, overlapping the next page's read.
const gzip = promisify<Uint8Array, zlib.ZlibOptions, Buffer>(zlib.gzip);
const gunzip = promisify<Uint8Array, Buffer>(zlib.gunzip);

const identity: Codec = async (input) => Buffer.from(input.buffer, input.byteOffset, input.byteLength);

function zstdCodec(which: "zstdCompress" | "zstdDecompress"): Codec {
  return (input) => {
    const fn = zstd[which];
    if (!fn) return Promise.reject(new Error(`this Node.js (${process.version}) has no zstd; use gzip`));
    return promisify(fn)(input);
  };
}

export const compressors: Record<Compression, Codec> = {
  gzip: (input) => gzip(input, { level: 1 }),
  zstd: zstdCodec("zstdCompress"),
  none: identity,
};

export const decompressors: Record<Compression, Codec> = {
  gzip: (input) => gunzip(input),
  zstd: zstdCodec("zstdDecompress"),
  none: identity,
};

export const extensionOf: Record<Compression, string> = { gzip: ".gz", zstd: ".zst", none: "" };
