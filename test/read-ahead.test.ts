import { describe, expect, it } from "vitest";
import { readAhead } from "../src/storage/chroma/read-ahead.js";

/** A read that takes a few milliseconds and records how many reads run at once. */
function tracked(fail?: number) {
  const seen = { running: 0, most: 0, started: [] as number[] };
  const read = async (index: number) => {
    seen.started.push(index);
    seen.running++;
    seen.most = Math.max(seen.most, seen.running);
    await new Promise((r) => setTimeout(r, 3));
    seen.running--;
    if (index === fail) throw new Error(`read ${index} failed`);
    return index;
  };
  return { seen, read };
}

describe("readAhead", () => {
  it.each([0, 1, 3])("yields every result in order with %i reads ahead, never more at once", async (ahead) => {
    const { seen, read } = tracked();
    const results: number[] = [];
    let mostWhileWorking = 0;
    for await (const value of readAhead(read, { ahead, count: 10 })) {
      mostWhileWorking = Math.max(mostWhileWorking, seen.running);
      results.push(value);
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(results).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(seen.started).toEqual(results);
    expect(mostWhileWorking).toBe(ahead);
    expect(seen.most).toBe(Math.max(1, ahead));
  });

  it("stops at the result isLast names and starts nothing after it", async () => {
    const { seen, read } = tracked();
    const results: number[] = [];
    for await (const value of readAhead(read, { ahead: 2, isLast: (v) => v === 4 })) results.push(value);
    expect(results).toEqual([0, 1, 2, 3, 4]);
    expect(Math.max(...seen.started)).toBeLessThanOrEqual(6);
  });

  it("surfaces a failed read when its turn comes, after the results before it", async () => {
    const { read } = tracked(3);
    const results: number[] = [];
    await expect(
      (async () => {
        for await (const value of readAhead(read, { ahead: 2, count: 10 })) results.push(value);
      })(),
    ).rejects.toThrow("read 3 failed");
    expect(results).toEqual([0, 1, 2]);
  });
});
