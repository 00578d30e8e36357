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

/**
 * gzip for the small chunks of deduplicated backups (a few records each), still read by any gunzip: one member per
 * part, compressed on the calling thread. Deflate's fixed cost per call (and the async codec's stream and thread hop)
 * outweighs its work on a chunk this small: Huffman coding 9 KB of floats took ~400 µs, four times its cost per byte
 * on a big chunk. So only what compresses is coded: the record text at level 1 and the last plane of the shuffled
 * floats (sign and high exponent bits) with Huffman coding alone; the other three planes are mantissa bits, near
 * random, and go in a stored member (no search, no coding). Coding that plane alone also gives it a Huffman table of
 * its own, so the chunk comes out smaller than with one table over all four planes (the floats of 500 six-record
 * chunks of 384-dim embeddings: 3.8 MB against 4.2 MB; the whole chunk in about a third of the time).
 */
export function gzipSmallChunk({ text, floats }: ChunkParts): Buffer {
  const plane = floats.length / 4;
  return Buffer.concat([
    zlib.gzipSync(text, { level: 1, windowBits: 12, memLevel: 4 }),
    zlib.gzipSync(floats.subarray(0, 3 * plane), { level: 0 }),
    zlib.gzipSync(floats.subarray(3 * plane), { level: 1, strategy: zlib.constants.Z_HUFFMAN_ONLY }),
  ]);
}

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
