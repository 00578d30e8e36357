import { describe, expect, it } from "vitest";
import { isoWeek, selectRetained } from "../src/storage/retention/retention.js";

const at = (iso: string) => ({ id: iso, time: new Date(iso) });
const ids = (list: { id: string }[]) => list.map((b) => b.id);

describe("retention (restic forget rules)", () => {
  // Two backups a day at 03:00 and 15:00 from 2026-01-01 to 2026-03-31.
  const backups: { id: string; time: Date }[] = [];
  for (let day = new Date("2026-01-01T00:00:00Z"); day < new Date("2026-04-01T00:00:00Z"); day = new Date(day.getTime() + 86_400_000)) {
    const date = day.toISOString().slice(0, 10);
    backups.push(at(`${date}T03:00:00.000Z`), at(`${date}T15:00:00.000Z`));
  }

  it("keeps the N newest for last", () => {
    const { keep, remove } = selectRetained(backups, { last: 3 });
    expect(ids(keep.map((k) => k.backup))).toEqual(["2026-03-31T15:00:00.000Z", "2026-03-31T03:00:00.000Z", "2026-03-30T15:00:00.000Z"]);
    expect(remove).toHaveLength(backups.length - 3);
  });

  it("keeps the newest backup of each of the N most recent days, weeks and months", () => {
    const daily = selectRetained(backups, { daily: 3 }).keep.map((k) => k.backup.id);
    expect(daily).toEqual(["2026-03-31T15:00:00.000Z", "2026-03-30T15:00:00.000Z", "2026-03-29T15:00:00.000Z"]);
    const weekly = selectRetained(backups, { weekly: 2 }).keep.map((k) => k.backup.id);
    // 2026-03-31 is a Tuesday (week 14); the week before ends on Sunday 2026-03-29.
    expect(weekly).toEqual(["2026-03-31T15:00:00.000Z", "2026-03-29T15:00:00.000Z"]);
    const monthly = selectRetained(backups, { monthly: 2 }).keep.map((k) => k.backup.id);
    expect(monthly).toEqual(["2026-03-31T15:00:00.000Z", "2026-02-28T15:00:00.000Z"]);
  });

  it("keeps the union of the rules, with every reason", () => {
    const { keep } = selectRetained(backups, { last: 2, daily: 2, monthly: 3 });
    const reasons = Object.fromEntries(keep.map((k) => [k.backup.id, k.reasons]));
    expect(Object.keys(reasons)).toEqual([
      "2026-03-31T15:00:00.000Z",
      "2026-03-31T03:00:00.000Z",
      "2026-03-30T15:00:00.000Z",
      "2026-02-28T15:00:00.000Z",
      "2026-01-31T15:00:00.000Z",
    ]);
    expect(reasons["2026-03-31T15:00:00.000Z"]).toEqual(["last", "daily 2026-03-31", "monthly 2026-03"]);
    expect(reasons["2026-03-31T03:00:00.000Z"]).toEqual(["last"]);
  });

  it("counts only days that have backups, skipping gaps", () => {
    const sparse = [at("2026-05-20T03:00:00Z"), at("2026-05-10T03:00:00Z"), at("2026-05-01T03:00:00Z"), at("2026-04-01T03:00:00Z")];
    expect(ids(selectRetained(sparse, { daily: 3 }).keep.map((k) => k.backup))).toEqual(ids(sparse.slice(0, 3)));
  });

  it("never removes the newest backup, whatever the policy", () => {
    const { keep, remove } = selectRetained(backups, { daily: 0, last: 0 });
    expect(ids(keep.map((k) => k.backup))).toEqual(["2026-03-31T15:00:00.000Z"]);
    expect(keep[0]!.reasons).toEqual(["newest"]);
    expect(remove).toHaveLength(backups.length - 1);
    expect(selectRetained([], { last: 1 })).toEqual({ keep: [], remove: [] });
  });

  it("numbers ISO weeks like ISO 8601", () => {
    expect(isoWeek(new Date("2026-01-01T12:00:00Z"))).toBe("2026-W01");
    expect(isoWeek(new Date("2027-01-01T12:00:00Z"))).toBe("2026-W53");
    expect(isoWeek(new Date("2024-12-30T12:00:00Z"))).toBe("2025-W01");
  });
});
