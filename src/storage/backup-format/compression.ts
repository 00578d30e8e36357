import { promisify } from "node:util";
import zlib from "node:zlib";
import type { ChunkParts } from "./chunk-codec.js";

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

// The async codecs run on the libuv pool, overlapping the next page's read.
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

/**
 * gzip writes a chunk as two gzip members, which every gunzip reads back as one stream: the record text at level 1,
 * then the byte-shuffled embeddings with Huffman coding only. Repeats in float bytes are rare, so searching for them
 * (what gzip spends its time on) saves only about 2% there; Huffman coding alone still squeezes the sign and exponent
 * bytes, three times as fast as level 1 (measured on 384-dim embeddings).
 */
const gzipChunk = async ({ text, floats }: ChunkParts): Promise<Buffer> => {
  const [head, tail] = await Promise.all([
    gzip(text, { level: 1 }),
    gzip(floats, { level: 1, strategy: zlib.constants.Z_HUFFMAN_ONLY }),
  ]);
  return Buffer.concat([head, tail]);
};

const whole = ({ text, floats }: ChunkParts) => Buffer.concat([text, floats]);

const zstdCompress = zstdCodec("zstdCompress");

export const compressors: Record<Compression, (parts: ChunkParts) => Promise<Buffer>> = {
  gzip: gzipChunk,
  zstd: (parts) => zstdCompress(whole(parts)),
  none: async (parts) => whole(parts),
};

export const decompressors: Record<Compression, Codec> = {
  gzip: (input) => gunzip(input),
  zstd: zstdCodec("zstdDecompress"),
  none: identity,
};

export const extensionOf: Record<Compression, string> = { gzip: ".gz", zstd: ".zst", none: "" };
