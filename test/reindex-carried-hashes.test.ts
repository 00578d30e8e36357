import { describe, expect, it } from "vitest";
import { CarriedHashes } from "../src/storage/chroma/carried-hashes.js";

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
    }
    expect(table.size).toBe(0);
    table.beginPass();
    expect(table.update("last", 1)).toBe(true);
    expect(table.update("last", 1)).toBe(false);
    expect(table.size).toBe(1);
  });
});
