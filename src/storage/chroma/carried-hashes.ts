import { createHash, randomBytes } from "node:crypto";

const EMPTY = 0;
const LIVE = 1;
/** A deleted entry: lookups probe past it, so entries placed after it stay reachable; dropped at the next rehash. */
const GONE = 2;
/** Live and deleted entries kept to at most this share of the slots (linear probing stays short below it). */
const MAX_LOAD = 0.7;

/** An id as the 64-bit key of its slot, in two 32-bit halves `[high, low]`. */
export type IdHash = (id: string) => readonly [number, number];

/** How a table is set up. */
export interface CarriedHashesOptions {
  /** Entries it is sized for at first (it grows as needed). @defaultValue 1024 */
  expected?: number | undefined;
  /**
   * Replaces the keyed SHA-1 of ids: tests force collisions with it (a 64-bit collision of a hash keyed per table
   * cannot be found in test time). @defaultValue 64 bits of SHA-1 over a random key of this table and the id
   */
  idHash?: IdHash | undefined;
  /** The key of the keyed id hash (a table read back from `serialize` brings its own). @defaultValue random bytes */
  idKey?: Buffer | undefined;
}

/** `serialize`'s layout: magic, key, slot entries (`high`, `low`, 48-bit content: 14 bytes each), collided ids. */
const MAGIC = "VKCH1";
const KEY_BYTES = 16;
const ENTRY_BYTES = 14;

/** An entry kept by its full id: one whose 64-bit key another id already holds. */
interface ExactEntry {
  content: number;
  seenIn: number;
}

/**
 * Per record id, the content hash of what a sync last carried over, and whether the current pass has seen it, in
 * typed arrays instead of a Map of strings: an id is kept as 64 bits of its keyed SHA-1 (18 bytes a slot, about 26–52 bytes
 * a record with the free slots of an open-addressing table, where a Map<string, number> takes about 100 and a pass's
 * Set of seen ids as much again). Ids are not kept, so the ones a pass did not see are named from another listing
 * (`isUnseen`).
 *
 * Two ids with the same 64-bit key would share a slot (odds about n²/2⁶⁵ for n ids: 1 in 3.7·10⁷ for a million), and
 * each pass would take either for a change of the other, so catch-up would never settle and a delete of one would be
 * hidden by the other. The hash is keyed with random bytes of this table, so ids cannot be chosen to collide. A key met
 * a second time in one pass with another content hash (which covers the id) is taken for a collision: that id is kept
 * by its full id in a side table (`exact`), looked up before the slots, and the slot stays with the id that holds it.
 * (The same id read twice in one pass with different contents lands there too: its slot is then never seen again and
 * is dropped at the end of the next pass.) What is not told apart: a new id that takes the key of an id deleted in the
 * same pass before the pair was ever met together (odds below 2⁻⁶⁴ a pair of ids).
 *
 * Passes run `beginPass` … `endPass`, and a table whose pass broke off is not used again (`beginPass` throws): its
 * parity would count the entries that pass did not reach as seen, and it holds hashes of records it never wrote.
 */
export class CarriedHashes {
  private capacity = 0;
  private keyHigh = new Uint32Array(0);
  private keyLow = new Uint32Array(0);
  private content = new Float64Array(0);
  private state = new Uint8Array(0);
  /** The parity of the pass that last saw each entry. */
  private seenIn = new Uint8Array(0);
  private parity = 0;
  private live = 0;
  private used = 0;
  private unseenLive = 0;
  /** Whether a pass has begun and not ended. */
  private inPass = false;
  /** Ids whose key another id holds (see the class comment). Usually empty. */
  private readonly exact = new Map<string, ExactEntry>();
  private readonly idHash: IdHash;
  /** The key of the id hash, unless a test replaced the hash: what `serialize` writes so a table can be read back. */
  private readonly idKey: Buffer | undefined;

  constructor(options: CarriedHashesOptions = {}) {
    this.idKey = options.idHash ? undefined : (options.idKey ?? randomBytes(KEY_BYTES));
    this.idHash = options.idHash ?? keyedIdHash(this.idKey!);
    this.allocate(options.expected ?? 1024);
  }

  /**
   * The table as bytes (about 14 a record), to be read back by `deserialize` in another run: a reindex keeps what it
   * last carried over from the collection it sets aside, to find what was written there since. Only between passes.
   */
  serialize(): Buffer {
    if (this.inPass || !this.idKey) throw new Error("CarriedHashes: only a table between passes, with its own id hash, is serialized");
    const slots = this.live - this.exact.size;
    const exact = Buffer.from(JSON.stringify([...this.exact].map(([id, entry]) => [id, entry.content])));
    const out = Buffer.alloc(MAGIC.length + KEY_BYTES + 8 + slots * ENTRY_BYTES + exact.length);
    let at = out.write(MAGIC, 0, "latin1");
    at += this.idKey.copy(out, at);
    at = out.writeUInt32BE(slots, at);
    at = out.writeUInt32BE(exact.length, at);
    for (let slot = 0; slot < this.capacity; slot++) {
      if (this.state[slot] !== LIVE) continue;
      at = out.writeUInt32BE(this.keyHigh[slot]!, at);
      at = out.writeUInt32BE(this.keyLow[slot]!, at);
      at = out.writeUIntBE(this.content[slot]!, at, 6);
    }
    exact.copy(out, at);
    return out;
  }

  /** A table `serialize` wrote; throws on bytes it did not write. */
  static deserialize(bytes: Buffer): CarriedHashes {
    const head = MAGIC.length + KEY_BYTES + 8;
    if (bytes.length < head || bytes.toString("latin1", 0, MAGIC.length) !== MAGIC) throw new Error("CarriedHashes: not a serialized table");
    const slots = bytes.readUInt32BE(MAGIC.length + KEY_BYTES);
    const exactLength = bytes.readUInt32BE(MAGIC.length + KEY_BYTES + 4);
    if (bytes.length !== head + slots * ENTRY_BYTES + exactLength) throw new Error("CarriedHashes: a serialized table of the wrong length");
    const table = new CarriedHashes({ expected: slots, idKey: Buffer.from(bytes.subarray(MAGIC.length, MAGIC.length + KEY_BYTES)) });
    for (let i = 0, at = head; i < slots; i++, at += ENTRY_BYTES) {
      const slot = table.probe(bytes.readUInt32BE(at), bytes.readUInt32BE(at + 4));
      table.state[slot] = LIVE;
      table.keyHigh[slot] = bytes.readUInt32BE(at);
      table.keyLow[slot] = bytes.readUInt32BE(at + 4);
      table.content[slot] = bytes.readUIntBE(at + 8, 6);
      table.seenIn[slot] = table.parity;
      table.live++;
      table.used++;
    }
    const exact = JSON.parse(bytes.toString("utf8", head + slots * ENTRY_BYTES)) as [string, number][];
    for (const [id, content] of exact) table.exact.set(id, { content, seenIn: table.parity });
    table.live += exact.length;
    return table;
  }

  /** Entries held. */
  get size(): number {
    return this.live;
  }

  /** Entries held that the current pass has not seen. */
  get unseen(): number {
    return this.unseenLive;
  }

  /** Ids held by their full id because another id holds their key (see the class comment). */
  get collided(): number {
    return this.exact.size;
  }

  /** Starts a pass: every entry unseen until `update` meets its id. */
  beginPass(): void {
    if (this.inPass) throw new Error("CarriedHashes: a pass began before the one before it ended; a table whose pass failed is not reused");
    this.parity ^= 1;
    this.unseenLive = this.live;
    this.inPass = true;
  }

  /** Ends a pass that ran to its end (see `beginPass`). */
  endPass(): void {
    this.inPass = false;
  }

  /**
   * Marks `id` seen in this pass with content `hash`; returns whether that differs from what was carried over before
   * (or the id is new), in which case the hash is stored: the caller carries the record over.
   */
  update(id: string, hash: number): boolean {
    const held = this.exactEntry(id);
    if (held) {
      if (held.seenIn !== this.parity) {
        held.seenIn = this.parity;
        this.unseenLive--;
      }
      if (held.content === hash) return false;
      held.content = hash;
      return true;
    }
    const [high, low] = this.idHash(id);
    let slot = this.probe(high, low);
    if (this.state[slot] === LIVE) {
      if (this.seenIn[slot] === this.parity) {
        // Met before in this pass: the same id again (a content hash covers the id, so another id's differs), or
        // another id with the same key, which is then kept by its id.
        if (this.content[slot] === hash) return false;
        this.exact.set(id, { content: hash, seenIn: this.parity });
        this.live++;
        return true;
      }
      this.markSeen(slot);
      if (this.content[slot] === hash) return false;
    } else {
      if (this.used + 1 > this.capacity * MAX_LOAD) {
        this.rehash(this.live + 1);
        slot = this.probe(high, low);
      }
      this.state[slot] = LIVE;
      this.keyHigh[slot] = high;
      this.keyLow[slot] = low;
      this.seenIn[slot] = this.parity;
      this.live++;
      this.used++;
    }
    this.content[slot] = hash;
    return true;
  }

  /** Whether `id` is held and the current pass has not seen it. */
  isUnseen(id: string): boolean {
    const held = this.exactEntry(id);
    if (held) return held.seenIn !== this.parity;
    const slot = this.find(id);
    return slot >= 0 && this.seenIn[slot] !== this.parity;
  }

  /** Forgets `id`. */
  delete(id: string): void {
    const held = this.exactEntry(id);
    if (held) {
      if (held.seenIn !== this.parity) this.unseenLive--;
      this.exact.delete(id);
      this.live--;
      return;
    }
    const slot = this.find(id);
    if (slot < 0) return;
    if (this.seenIn[slot] !== this.parity) this.unseenLive--;
    this.state[slot] = GONE;
    this.live--;
  }

  /** Forgets every entry the current pass has not seen; returns how many. */
  dropUnseen(): number {
    const dropped = this.unseenLive;
    if (dropped === 0) return 0;
    for (const [id, entry] of this.exact) {
      if (entry.seenIn !== this.parity) {
        this.exact.delete(id);
        this.live--;
      }
    }
    for (let slot = 0; slot < this.capacity; slot++) {
      if (this.state[slot] === LIVE && this.seenIn[slot] !== this.parity) {
        this.state[slot] = GONE;
        this.live--;
      }
    }
    this.unseenLive = 0;
    return dropped;
  }

  private markSeen(slot: number): void {
    if (this.seenIn[slot] === this.parity) return;
    this.seenIn[slot] = this.parity;
    this.unseenLive--;
  }

  private exactEntry(id: string): ExactEntry | undefined {
    return this.exact.size === 0 ? undefined : this.exact.get(id);
  }

  private find(id: string): number {
    const [high, low] = this.idHash(id);
    const slot = this.probe(high, low);
    return this.state[slot] === LIVE ? slot : -1;
  }

  /** The slot holding the key, or the empty slot where it would go. */
  private probe(high: number, low: number): number {
    const mask = this.capacity - 1;
    for (let slot = low & mask; ; slot = (slot + 1) & mask) {
      const state = this.state[slot];
      if (state === EMPTY || (state === LIVE && this.keyLow[slot] === low && this.keyHigh[slot] === high)) return slot;
    }
  }

  private allocate(entries: number): void {
    let capacity = 1024;
    // Room to grow by about half before the next rehash (each one doubles the table).
    while (entries > capacity * 0.5) capacity *= 2;
    this.capacity = capacity;
    this.keyHigh = new Uint32Array(capacity);
    this.keyLow = new Uint32Array(capacity);
    this.content = new Float64Array(capacity);
    this.state = new Uint8Array(capacity);
    this.seenIn = new Uint8Array(capacity);
    this.live = this.exact.size;
    this.used = 0;
  }

  /** Moves the live entries into fresh arrays sized for `entries` (deleted ones are left behind). */
  private rehash(entries: number): void {
    const { keyHigh, keyLow, content, state, seenIn, capacity } = this;
    this.allocate(entries);
    for (let from = 0; from < capacity; from++) {
      if (state[from] !== LIVE) continue;
      const slot = this.probe(keyHigh[from]!, keyLow[from]!);
      this.state[slot] = LIVE;
      this.keyHigh[slot] = keyHigh[from]!;
      this.keyLow[slot] = keyLow[from]!;
      this.content[slot] = content[from]!;
      this.seenIn[slot] = seenIn[from]!;
      this.live++;
      this.used++;
    }
  }
}

/** 64 bits of SHA-1 over `key` and the id: ids cannot be chosen to collide without the key. */
function keyedIdHash(key: Buffer): IdHash {
  return (id) => {
    const digest = createHash("sha1").update(key).update(id).digest();
    return [digest.readUInt32BE(0), digest.readUInt32BE(4)];
  };
}
