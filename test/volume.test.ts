/**
 * Volume statistics on synthetic catalogs and run histories whose answers are worked out by hand
 * (in the comments). Days are counted in UTC here so that the answers do not depend on the machine.
 */
import { strict as assert } from "node:assert";
import type { FileRecord } from "../lib/archive/catalog";
import type { RunHistoryEntry } from "../lib/archive/history";
import { addMonths, computeVolume, dayKey, dayNamer, isoWeek } from "../lib/disk/volume";

function rec(p: string, size: number, mtimeIso: string, firstPulledAt: string): FileRecord {
  const mtime = Date.parse(mtimeIso) / 1000;
  return { path: p, size, mtime, sha256: "0".repeat(64), state: "final", firstPulledAt, pulledAt: firstPulledAt };
}

function run(at: string, bytes: number, newFiles: number): RunHistoryEntry {
  return { at, kind: "pull", durationMs: 1000, bytes, newFiles, changedFiles: 0, totalFiles: 0, totalBytes: 0 };
}

describe("volume statistics", () => {
  it("an empty archive has no rates, no forecast and no busiest day, and says so", () => {
    const v = computeVolume([], [], { now: new Date("2026-11-27T12:00:00Z"), freeBytes: 1e9, utc: true });
    assert.equal(v.files, 0);
    assert.equal(v.bytes, 0);
    assert.equal(v.bytesPerDay7, null);
    assert.equal(v.bytesPerDay30, null);
    assert.equal(v.rateSource, "none");
    assert.equal(v.daysUntilFull7, null);
    assert.equal(v.daysUntilFull30, null);
    assert.equal(v.busiestDay, null);
    assert.deepEqual(v.byPullDate.days, []);
    assert.deepEqual(v.projections.map((p) => [p.months, p.days, p.bytes, p.freeAfter]), [
      [1, 30, 0, 1e9],
      [6, 181, 0, 1e9],
      [12, 365, 0, 1e9],
    ]);
    assert.deepEqual(v.history, { runs: 0, since: null, damaged: 0 });
  });

  it("one day of history: the backfill day is no growth rate; file dates stand in", () => {
    // Both files first pulled today (the backfill). By file date: 1000 B on 25 Nov, 3000 B on 26 Nov.
    const records = [
      rec("a.csv", 1000, "2026-11-25T23:00:00Z", "2026-11-27T01:00:00Z"),
      rec("b.csv", 3000, "2026-11-26T23:00:00Z", "2026-11-27T01:00:00Z"),
    ];
    const v = computeVolume(records, [], { now: new Date("2026-11-27T12:00:00Z"), freeBytes: 1_000_000, utc: true });
    assert.equal(v.rateSource, "file-date");
    // window: 26 Nov (3000) and 25 Nov (1000) — the files start on 25 Nov — so 4000 B / 2 days
    assert.equal(v.rateDays7, 2);
    assert.equal(v.bytesPerDay7, 2000);
    assert.equal(v.bytesPerDay30, 2000);
    assert.equal(v.filesPerDay7, 1);
    assert.equal(v.daysUntilFull30, 500); // 1 000 000 / 2000
    assert.deepEqual(v.busiestDay, { day: "2026-11-27", files: 2, bytes: 4000 });
    // 27 Nov → 27 Dec (30 days), → 27 May 2027 (30+31+31+28+31+30 = 181), → 27 Nov 2027 (365)
    assert.deepEqual(v.projections.map((p) => [p.until, p.days, p.bytes, p.files, p.freeAfter]), [
      ["2026-12-27", 30, 60_000, 30, 940_000],
      ["2027-05-27", 181, 362_000, 181, 638_000],
      ["2027-11-27", 365, 730_000, 365, 270_000],
    ]);
    assert.deepEqual(v.byFileDate.days.map((d) => [d.day, d.bytes]), [["2026-11-25", 1000], ["2026-11-26", 3000]]);
  });

  describe("history across a month boundary, with the catalog before it and a clock that went back", () => {
    const records = [
      rec("old/a.csv", 10_000, "2026-01-15T12:00:00Z", "2026-02-20T08:00:00Z"), // backfill day
      rec("old/b.csv", 5_000, "2026-02-19T22:00:00Z", "2026-02-20T08:00:00Z"), // backfill day
      rec("c.csv", 700, "2026-02-27T20:00:00Z", "2026-02-27T09:00:00Z"), // before the history began
      rec("d.csv", 400, "2026-03-01T05:00:00Z", "2026-03-01T06:00:00Z"), // covered by the history
      rec("e.csv", 600, "2026-03-01T05:00:00Z", "2026-03-01T06:00:00Z"),
    ];
    const history = [
      run("2026-02-28T06:00:00Z", 300, 1),
      run("2026-03-05T00:00:00Z", 9_999, 5), // written before the clock was set back: in the future now
      run("2026-02-28T18:00:00Z", 200, 0),
      run("2026-03-01T06:00:00Z", 1_000, 2),
      run("2026-03-02T08:00:00Z", 50, 0), // today: not a complete day
    ];
    const v = computeVolume(records, history, { now: new Date("2026-03-02T10:00:00Z"), freeBytes: 22_000, utc: true, damagedHistory: 1 });

    it("counts each day once: the catalog before the history's first line, the history after", () => {
      assert.deepEqual(
        v.byPullDate.days.map((d) => [d.day, d.files, d.bytes]),
        [
          ["2026-02-20", 2, 15_000],
          ["2026-02-27", 1, 700],
          ["2026-02-28", 1, 500],
          ["2026-03-01", 2, 1_000],
          ["2026-03-02", 0, 50],
          ["2026-03-05", 5, 9_999],
        ],
      );
      assert.equal(v.files, 5);
      assert.equal(v.bytes, 16_700);
      assert.deepEqual(v.history, { runs: 5, since: "2026-02-28T06:00:00.000Z", damaged: 1 });
    });

    it("averages the complete days before today, leaving out the backfill day", () => {
      assert.equal(v.rateSource, "pulled");
      // 7 days: 1 Mar 1000 + 28 Feb 500 + 27 Feb 700 + four empty days = 2200 B, 4 files
      assert.equal(v.rateDays7, 7);
      assert.equal(v.bytesPerDay7, 2200 / 7);
      assert.equal(v.filesPerDay7, 4 / 7);
      // 30 days, but the archive's growth starts on 21 Feb: 21–28 Feb (8 days, 2026 is no leap year) + 1 Mar = 9 days
      assert.equal(v.rateDays30, 9);
      assert.equal(v.bytesPerDay30, 2200 / 9);
      assert.equal(v.filesPerDay30, 4 / 9);
      assert.equal(v.daysUntilFull7, 70); // 22000 / (2200/7)
      assert.equal(v.daysUntilFull30, 90); // 22000 / (2200/9)
    });

    it("groups by ISO week and calendar month, and finds the busiest day", () => {
      // 20 Feb 2026 is a Friday of week 8; 23 Feb–1 Mar is week 9; 2 Mar (Monday) starts week 10
      assert.deepEqual(v.byPullDate.weeks, [
        { period: "2026-W08", files: 2, bytes: 15_000 },
        { period: "2026-W09", files: 4, bytes: 2_200 },
        { period: "2026-W10", files: 5, bytes: 10_049 },
      ]);
      assert.deepEqual(v.byPullDate.months, [
        { period: "2026-02", files: 4, bytes: 16_200 },
        { period: "2026-03", files: 7, bytes: 11_049 },
      ]);
      assert.deepEqual(v.busiestDay, { day: "2026-02-20", files: 2, bytes: 15_000 });
      assert.deepEqual(v.byFileDate.months, [
        { period: "2026-01", files: 1, bytes: 10_000 },
        { period: "2026-02", files: 2, bytes: 5_700 },
        { period: "2026-03", files: 2, bytes: 1_000 },
      ]);
    });

    it("projects at the 30-day rate over calendar months", () => {
      // 2 Mar → 2 Apr is 31 days: 2200/9 × 31 = 7577.8 B, 4/9 × 31 = 13.8 files
      assert.deepEqual(v.projections[0], { months: 1, until: "2026-04-02", days: 31, bytes: 7578, files: 14, freeAfter: 22_000 - 7578 });
      // 2 Mar 2026 → 2 Mar 2027 is 365 days: 89 222 B, more than the 22 000 free
      assert.equal(v.projections[2].days, 365);
      assert.equal(v.projections[2].bytes, 89_222);
      assert.ok(v.projections[2].freeAfter! < 0);
    });
  });

  it("a clock set back before every history line gives no negative figures: file dates stand in", () => {
    const records = [rec("x.csv", 100, "2026-02-27T12:00:00Z", "2026-03-03T01:00:00Z"), rec("y.csv", 300, "2026-02-28T12:00:00Z", "2026-03-04T01:00:00Z")];
    const history = [run("2026-03-03T01:00:00Z", 100, 1), run("2026-03-04T01:00:00Z", 300, 1)];
    const v = computeVolume(records, history, { now: new Date("2026-03-01T00:30:00Z"), freeBytes: 2000, utc: true });
    assert.equal(v.rateSource, "file-date");
    assert.equal(v.rateDays7, 2); // 28 Feb (300) and 27 Feb (100)
    assert.equal(v.bytesPerDay7, 200);
    assert.equal(v.daysUntilFull7, 10);
    for (const p of v.projections) assert.ok(p.days > 0 && p.bytes >= 0);
  });

  it("a kept older version counts in the archive's bytes", () => {
    const r = rec("a.csv", 100, "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z");
    r.versions = [{ size: 40, mtime: 1, sha256: "1".repeat(64), pulledAt: "x", keptAt: "y", storedAs: ".tick-backup/versions/a", reason: "rewritten" }];
    assert.equal(computeVolume([r], [], { now: new Date("2026-01-10T00:00:00Z"), utc: true }).bytes, 140);
  });

  it("calendar helpers: month ends, leap years and ISO week edges", () => {
    assert.equal(addMonths("2026-01-31", 1), "2026-02-28");
    assert.equal(addMonths("2028-01-31", 1), "2028-02-29");
    assert.equal(addMonths("2026-08-31", 6), "2027-02-28");
    assert.equal(addMonths("2026-11-27", 12), "2027-11-27");
    assert.equal(isoWeek("2026-12-31"), "2026-W53");
    assert.equal(isoWeek("2027-01-01"), "2026-W53");
    assert.equal(isoWeek("2024-12-30"), "2025-W01");
    assert.equal(isoWeek("2026-01-01"), "2026-W01");
  });

  it("the fast day lookup agrees with the plain one, through daylight-saving changes and half-hour zones", () => {
    const zone = process.env.TZ;
    try {
      for (const tz of ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]) {
        process.env.TZ = tz;
        const fast = dayNamer(false);
        // every 7 minutes through the days around both 2026 changes in each hemisphere
        for (const [from, to] of [["2026-03-27", "2026-04-07"], ["2026-10-02", "2026-11-03"]]) {
          for (let ms = Date.parse(from); ms < Date.parse(to); ms += 7 * 60_000) assert.equal(fast(ms), dayKey(ms, false), `${tz} ${new Date(ms).toISOString()}`);
        }
      }
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });

  it("counts days in the local time zone unless told otherwise", () => {
    const zone = process.env.TZ;
    process.env.TZ = "Asia/Tokyo"; // UTC+9, no daylight saving: 23:30 UTC is already the next day there
    try {
      const r = rec("z.csv", 5, "2026-06-15T23:30:00Z", "2026-06-15T23:30:00Z");
      const now = new Date("2026-06-20T00:00:00Z");
      assert.equal(computeVolume([r], [], { now }).byPullDate.days[0].day, "2026-06-16");
      assert.equal(computeVolume([r], [], { now, utc: true }).byPullDate.days[0].day, "2026-06-15");
    } finally {
      if (zone === undefined) delete process.env.TZ;
      else process.env.TZ = zone;
    }
  });
});
