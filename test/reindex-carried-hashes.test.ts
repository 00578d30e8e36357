import { describe, expect, it } from "vitest";
import { CarriedHashes, type IdHash } from "../src/storage/chroma/carried-hashes.js";

/**
 * A 64-bit collision of the table's keyed SHA-1 cannot be found in test time (about 2³² hashes, and the key is new
 * each run): this hash gives `twin-x` the key of `x`, and `triplet-x` too.
 */
const twinHash: IdHash = (id) => {
  const base = id.replace(/^(twin|triplet)-/, "");
  let h = 2166136261;
  for (let i = 0; i < base.length; i++) h = Math.imul(h ^ base.charCodeAt(i), 16777619) >>> 0;
  return [h, Math.imul(h, 2654435761) >>> 0];
};

describe("CarriedHashes (a reindex's memory of what it carried over)", () => {
  it("tells new and changed records from unchanged ones across growth, and names the ones a pass did not see", () => {
    const table = new CarriedHashes();
    const n = 50_000;
    table.beginPass();
    let fresh = 0;
    for (let i = 0; i < n; i++) {
      if (table.update(`id-${i}`, i)) fresh++;
    }
    expect(fresh).toBe(n);
    expect(table.size).toBe(n);
    expect(table.unseen).toBe(0);

    // Next pass: every other record unchanged, every fourth changed, the rest not read (deleted or passed over).
    table.endPass();
    table.beginPass();
    expect(table.unseen).toBe(n);
    let changed = 0;
    for (let i = 0; i < n; i += 2) {
      const hash = i % 4 === 0 ? i + 0.5 : i;
      if (table.update(`id-${i}`, hash)) changed++;
    }
    expect(changed).toBe(n / 4);
    expect(table.update("brand-new", 7)).toBe(true);
    expect(table.update("brand-new", 7)).toBe(false);
    expect(table.size).toBe(n + 1);
    expect(table.unseen).toBe(n / 2);
    expect(table.isUnseen("id-1")).toBe(true);
    expect(table.isUnseen("id-2")).toBe(false);
    expect(table.isUnseen("brand-new")).toBe(false);
    expect(table.isUnseen("never-held")).toBe(false);

    // Half the unseen are deleted by name, the rest dropped; deleted slots stay probe-able past.
    for (let i = 1; i < n; i += 4) table.delete(`id-${i}`);
    expect(table.unseen).toBe(n / 4);
    expect(table.dropUnseen()).toBe(n / 4);
    expect(table.size).toBe(n / 2 + 1);
    expect(Array.from({ length: n }, (_, i) => `id-${i}`).filter((id) => table.isUnseen(id))).toEqual([]);

    // A pass after: what was kept is unchanged, what was forgotten is new again.
    table.endPass();
    table.beginPass();
    expect(table.update("id-4", 4.5)).toBe(false);
    expect(table.update("id-6", 6)).toBe(false);
    expect(table.update("id-1", 1)).toBe(true);
    expect(table.update("id-3", 3)).toBe(true);
    expect(table.size).toBe(n / 2 + 3);
    expect(table.unseen).toBe(n / 2 + 1 - 2);
  });

  it("keeps its size through many inserts and deletes (deleted slots are reclaimed when it rehashes)", () => {
    const table = new CarriedHashes();
    for (let round = 0; round < 20; round++) {
      table.beginPass();
      for (let i = 0; i < 5_000; i++) table.update(`r${round}-${i}`, i);
      for (let i = 0; i < 5_000; i++) table.delete(`r${round}-${i}`);
      table.endPass();
    }
    expect(table.size).toBe(0);
    table.beginPass();
    expect(table.update("last", 1)).toBe(true);
    expect(table.update("last", 1)).toBe(false);
    expect(table.size).toBe(1);
  });

  it("keeps ids that share a key apart: passes settle, and a delete of either one is named", () => {
    const table = new CarriedHashes({ idHash: twinHash });
    // A content hash covers the id, so twins' contents hash apart (as `contentHash` makes them).
    let changedTwin = false;
    const content = (id: string) => (id === "twin-b" && changedTwin ? 0.5 : [...id].reduce((h, c) => h * 31 + c.charCodeAt(0), 7));
    const pass = (ids: readonly string[], hashOf: (id: string) => number = content) => {
      table.beginPass();
      const changed = ids.filter((id) => table.update(id, hashOf(id)));
      return changed;
    };
    const ids = ["a", "twin-a", "b", "twin-b", "c", "d", "twin-d", "triplet-d"];
    expect(pass(ids)).toEqual(ids);
    table.endPass();
    expect(table.size).toBe(8);
    expect(table.collided).toBe(4);
    // Read again unchanged, in either order: nothing to carry (the old table rewrote every twin each pass).
    expect(pass(ids)).toEqual([]);
    table.endPass();
    expect(pass([...ids].reverse())).toEqual([]);
    table.endPass();
    // A change of one twin is the change of that one only.
    changedTwin = true;
    expect(pass(ids)).toEqual(["twin-b"]);
    table.endPass();

    // "a" (held in the slot) and "twin-d" (held by id) deleted from the source: both unseen, their twins not.
    pass(ids.filter((id) => id !== "a" && id !== "twin-d"));
    expect(table.unseen).toBe(2);
    expect(ids.filter((id) => table.isUnseen(id))).toEqual(["a", "twin-d"]);
    table.delete("a");
    table.delete("twin-d");
    expect(table.unseen).toBe(0);
    expect(table.dropUnseen()).toBe(0);
    table.endPass();
    expect(table.size).toBe(6);

    // Unseen ones of either kind dropped; the rest kept.
    pass(["twin-a", "b", "c", "d"]);
    expect(table.unseen).toBe(2);
    expect(table.dropUnseen()).toBe(2);
    table.endPass();
    expect(table.size).toBe(4);
    changedTwin = false;
    expect(pass(["twin-a", "b", "c", "d", "twin-b"])).toEqual(["twin-b"]);
    table.endPass();
  });

  it("is not reused after a pass that broke off", () => {
    const table = new CarriedHashes();
    table.beginPass();
    table.update("a", 1);
    table.endPass();
    table.beginPass();
    expect(() => table.beginPass()).toThrow(/whose pass failed is not reused/);
  });

  it("is read back from its bytes by another run (a kept collection's record): the same ids, contents and id key", () => {
    const table = new CarriedHashes();
    const n = 3000;
    table.beginPass();
    for (let i = 0; i < n; i++) table.update(`id-${i}`, i * 7919 + 2 ** 40);
    table.endPass();
    const bytes = table.serialize();
    expect(bytes.length).toBeLessThan(n * 14 + 64);

    const copy = CarriedHashes.deserialize(bytes);
    expect(copy.size).toBe(n);
    copy.beginPass();
    expect(copy.unseen).toBe(n);
    const changed: number[] = [];
    for (let i = 1; i < n; i++) if (copy.update(`id-${i}`, i === 5 ? 1 : i * 7919 + 2 ** 40)) changed.push(i);
    expect(changed).toEqual([5]);
    expect(copy.update("new", 3)).toBe(true);
    // Only id-0 was not read: named as unseen, by the key the original table gave it.
    expect(copy.unseen).toBe(1);
    expect(copy.isUnseen("id-0")).toBe(true);
    expect(copy.isUnseen("id-1")).toBe(false);

    expect(() => copy.serialize()).toThrow(/between passes/);
    expect(() => CarriedHashes.deserialize(bytes.subarray(0, bytes.length - 1))).toThrow(/wrong length/);
    expect(() => CarriedHashes.deserialize(Buffer.from("not a table at all, just some bytes"))).toThrow(/not a serialized table/);
  });
});
