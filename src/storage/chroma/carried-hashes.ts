import { createHash } from "node:crypto";

const EMPTY = 0;
const LIVE = 1;
/** A deleted entry: lookups probe past it, so entries placed after it stay reachable; dropped at the next rehash. */
const GONE = 2;
/** Live and deleted entries kept to at most this share of the slots (linear probing stays short below it). */
const MAX_LOAD = 0.7;

/**
 * Per record id, the content hash of what a sync last carried over, and whether the current pass has seen it, in
 * typed arrays instead of a Map of strings: an id is kept as 64 bits of its SHA-1 (18 bytes a slot, about 26–52 bytes
 * a record with the free slots of an open-addressing table, where a Map<string, number> takes about 100 and a pass's
 * Set of seen ids as much again). Ids are not kept, so the ones a pass did not see are named from another listing
 * (`isUnseen`). Two ids whose 64-bit hashes are equal would share an entry: with a million ids the odds are 1 in 10¹³.
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

  constructor(expected = 1024) {
    this.allocate(expected);
  }

  /** Entries held. */
  get size(): number {
    return this.live;
  }

  /** Entries held that the current pass has not seen. */
  get unseen(): number {
    return this.unseenLive;
  }

  /** Starts a pass: every entry unseen until `update` meets its id. */
  beginPass(): void {
    this.parity ^= 1;
    this.unseenLive = this.live;
  }

  /**
   * Marks `id` seen in this pass with content `hash`; returns whether that differs from what was carried over before
   * (or the id is new), in which case the hash is stored: the caller carries the record over.
   */
  update(id: string, hash: number): boolean {
    const [high, low] = idHash(id);
    let slot = this.probe(high, low);
    if (this.state[slot] === LIVE) {
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
    const slot = this.find(id);
    return slot >= 0 && this.seenIn[slot] !== this.parity;
  }

  /** Forgets `id`. */
  delete(id: string): void {
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

  private find(id: string): number {
    const [high, low] = idHash(id);
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
    this.live = 0;
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

function idHash(id: string): [number, number] {
  const digest = createHash("sha1").update(id).digest();
  return [digest.readUInt32BE(0), digest.readUInt32BE(4)];
}
