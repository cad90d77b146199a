import { strict as assert } from "node:assert";
import * as path from "node:path";
import { checkStoredName, localPath } from "../lib/archive/paths";
import { collisionKey, decodeName, encodeName, NameMap, POSIX_RULES, WINDOWS_RULES, type NameRules } from "../lib/archive/names";
import { UnsafeName } from "../lib/errors";

/** Hostile and reserved remote names, each with what a Windows-family disk stores it as. */
const TABLE: Array<[string, string]> = [
  ["EURUSD_2026-11-26T10:00.csv", "EURUSD_2026-11-26T10%3A00.csv"],
  ['a<b>c:d"e|f?g*h.csv', "a%3Cb%3Ec%3Ad%22e%7Cf%3Fg%2Ah.csv"],
  ["back\\slash.csv", "back%5Cslash.csv"],
  ["line\nbreak\t\u0001\u007f.csv", "line%0Abreak%09%01%7F.csv"],
  ["100%.csv", "100%25.csv"],
  ["%3A.csv", "%253A.csv"],
  ["trailing dot.", "trailing dot%2E"],
  ["trailing space ", "trailing space%20"],
  ["dots...", "dots..%2E"],
  ["CON", "%43ON"],
  ["con.txt", "%63on.txt"],
  ["Nul.tar.gz", "%4Eul.tar.gz"],
  ["COM1.csv", "%43OM1.csv"],
  ["lpt9", "%6Cpt9"],
  ["COM¹", "%43OM¹"],
  ["CON .csv", "%43ON .csv"],
  ["CONSOLE.csv", "CONSOLE.csv"],
  ["COM10", "COM10"],
  ["日本円 €.csv", "日本円 €.csv"],
  ["-rf", "-rf"],
  ["..hidden", "..hidden"],
  ["plain.csv", "plain.csv"],
];

const ASCII_ONLY: NameRules = { ...WINDOWS_RULES, asciiOnly: true, maxName: { max: 255, unit: "bytes" } };

describe("stored names", () => {
  describe("escaping", () => {
    for (const [remote, stored] of TABLE) {
      it(`${JSON.stringify(remote)} on a Windows-family disk is ${JSON.stringify(stored)} and decodes back`, () => {
        assert.equal(encodeName(remote, WINDOWS_RULES), stored);
        assert.equal(decodeName(stored), remote);
        checkStoredName(stored, path.win32);
        checkStoredName(stored, path.posix);
      });
    }

    it("on a POSIX disk escapes only what no archive should hold: %, backslash and control characters", () => {
      for (const [remote] of TABLE) {
        const stored = encodeName(remote, POSIX_RULES);
        assert.equal(decodeName(stored), remote);
        checkStoredName(stored, path.posix);
        if (!/[%\\\u0000-\u001f\u007f]/.test(remote)) assert.equal(stored, remote, "nothing else changes");
      }
      assert.equal(encodeName("EURUSD_10:00.csv", POSIX_RULES), "EURUSD_10:00.csv");
    });

    it("on an ASCII-only disk stores other characters as their UTF-8 bytes", () => {
      const stored = encodeName("日本円 €.csv", ASCII_ONLY);
      assert.equal(stored, "%E6%97%A5%E6%9C%AC%E5%86%86 %E2%82%AC.csv");
      assert.equal(decodeName(stored), "日本円 €.csv");
      assert.ok(/^[\x20-\x7e]+$/.test(stored));
    });

    it("no two remote names share a stored name (escaping is one-to-one)", () => {
      const names = ["a:b", "a%3Ab", "a%253Ab", "a%b", "a%25b", "CON", "%43ON", "x.", "x%2E", "x", "x "];
      for (const rules of [WINDOWS_RULES, POSIX_RULES, ASCII_ONLY]) {
        const stored = names.map((n) => encodeName(n, rules));
        assert.equal(new Set(stored).size, names.length, JSON.stringify(stored));
        assert.deepEqual(stored.map(decodeName), names);
      }
    });
  });

  describe("over-long names", () => {
    it("are cut to the filesystem's limit in its own unit, keep their extension and stay apart", () => {
      const rules: NameRules = { ...WINDOWS_RULES, maxName: { max: 40, unit: "utf16" } };
      const map = new NameMap(rules);
      const a = map.storedFor(`${"x".repeat(60)}:a.csv`);
      const b = map.storedFor(`${"x".repeat(60)}:b.csv`);
      assert.notEqual(a, b);
      for (const s of [a, b]) {
        assert.ok(s.length <= 40 && s.endsWith(".csv"), s);
        assert.match(s, /^x+~[0-9a-f]{10}\.csv$/);
      }
    });

    it("count bytes where the filesystem counts bytes, and never cut inside an escape", () => {
      const rules: NameRules = { ...ASCII_ONLY, maxName: { max: 30, unit: "bytes" } };
      const stored = new NameMap(rules).storedFor("€€€€€€€€€€€€€€€€€€€€.csv");
      assert.ok(Buffer.byteLength(stored) <= 30, stored);
      assert.match(stored, /^(%[0-9A-F]{2})+~[0-9a-f]{10}\.csv$/);
    });
  });

  describe("collisions on case-insensitive disks", () => {
    it("keeps both names: the second is told apart, the same way every time", () => {
      const map = new NameMap(WINDOWS_RULES);
      const upper = map.storedFor("EURUSD/2026-11-26.csv");
      const lower = map.storedFor("eurusd/2026-11-26.csv");
      assert.equal(upper, "EURUSD/2026-11-26.csv");
      assert.match(lower, /^eurusd~[0-9a-f]{8}\/2026-11-26\.csv$/);
      assert.equal(map.storedFor("eurusd/other.csv").split("/")[0], lower.split("/")[0], "one folder for one remote folder");
      assert.equal(new NameMap(WINDOWS_RULES, [{ path: "EURUSD/2026-11-26.csv" }]).storedFor("eurusd/2026-11-26.csv"), lower);
    });

    it("tells apart files in one folder, and names that escape to the same case-folded name", () => {
      const map = new NameMap(WINDOWS_RULES);
      const names = ["Tick.csv", "TICK.csv", "tick.CSV", "a:b", "A:B", "straße.csv", "STRASSE.csv"];
      const stored = names.map((n) => map.storedFor(n));
      assert.equal(new Set(stored.map((s) => collisionKey(s, WINDOWS_RULES))).size, names.length, JSON.stringify(stored));
    });

    it("tells apart composed and decomposed Unicode where the disk does not (macOS)", () => {
      const rules: NameRules = { ...POSIX_RULES, caseInsensitive: true, normalizationInsensitive: true };
      const map = new NameMap(rules);
      const composed = map.storedFor("caf\u00e9.csv");
      const decomposed = map.storedFor("cafe\u0301.csv");
      assert.notEqual(collisionKey(composed, rules), collisionKey(decomposed, rules));
      const posix = new NameMap(POSIX_RULES);
      assert.equal(posix.storedFor("cafe\u0301.csv"), "cafe\u0301.csv", "a disk that tells them apart stores both as they are");
      assert.equal(posix.storedFor("caf\u00e9.csv"), "caf\u00e9.csv");
    });

    it("keeps the state folder's name free in any case", () => {
      const map = new NameMap(WINDOWS_RULES, [], [".tick-backup"]);
      assert.match(map.storedFor(".TICK-BACKUP/x.csv"), /^\.TICK-BACKUP~[0-9a-f]{8}\/x\.csv$/);
      assert.equal(new NameMap(POSIX_RULES, [], [".tick-backup"]).storedFor(".TICK-BACKUP/x.csv"), ".TICK-BACKUP/x.csv");
    });

    it("learns stored names from the catalog, never reassigning them", () => {
      const known = [{ path: "eurusd/a.csv", storedPath: "eurusd~deadbeef/a.csv" }, { path: "EURUSD/a.csv" }];
      const map = new NameMap(WINDOWS_RULES, known);
      assert.equal(map.storedFor("eurusd/a.csv"), "eurusd~deadbeef/a.csv");
      assert.equal(map.storedFor("eurusd/b.csv"), "eurusd~deadbeef/b.csv");
      assert.equal(map.storedFor("EURUSD/b.csv"), "EURUSD/b.csv");
      const third = map.storedFor("EurUsd/c.csv");
      assert.ok(!["eurusd~deadbeef", "EURUSD"].includes(third.split("/")[0]), third);
    });
  });

  describe("local paths with path.win32 and path.posix", () => {
    it("joins stored paths with the platform's separator, inside the root", () => {
      assert.equal(localPath("C:\\Archive\\ticks", "EURUSD/2026-11-26T10%3A00.csv", path.win32), "C:\\Archive\\ticks\\EURUSD\\2026-11-26T10%3A00.csv");
      assert.equal(localPath("\\\\nas\\backup\\ticks", "a/b.csv", path.win32), "\\\\nas\\backup\\ticks\\a\\b.csv");
      assert.equal(localPath("D:\\", "a.csv", path.win32), "D:\\a.csv");
      assert.equal(localPath("/media/usb", "EURUSD/x.csv", path.posix), "/media/usb/EURUSD/x.csv");
      assert.equal(localPath("/", "x.csv", path.posix), "/x.csv");
    });

    it("refuses anything that could leave the root or mean something else on Windows", () => {
      for (const bad of ["../x", "a/../../x", "D:x", "a/C:", "x:stream", "a\\..\\..\\x", ".tick-backup/catalog.json", "a//b", "line\nbreak"]) {
        assert.throws(() => localPath("C:\\Archive", bad, path.win32), UnsafeName, bad);
      }
      for (const bad of ["../x", "a\\b", ".tick-backup/x", "tab\there"]) {
        assert.throws(() => localPath("/media/usb", bad, path.posix), UnsafeName, bad);
      }
    });

    it("every stored name from the table is one component under its platform's path module", () => {
      for (const [remote] of TABLE) {
        const win = new NameMap(WINDOWS_RULES).storedFor(`dir/${remote}`);
        assert.equal(path.win32.dirname(localPath("C:\\A", win, path.win32)), "C:\\A\\dir");
        assert.equal(path.win32.basename(localPath("C:\\A", win, path.win32)), win.split("/")[1]);
        const posix = new NameMap(POSIX_RULES).storedFor(`dir/${remote}`);
        assert.equal(path.posix.dirname(localPath("/a", posix, path.posix)), "/a/dir");
      }
    });
  });
});
