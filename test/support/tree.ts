import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import { createHash, randomBytes } from "node:crypto";

export function tempDir(prefix = "tick-test-"): string {
  return fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), prefix)));
}

export function sha256(file: string): string {
  return createHash("sha256").update(fs.readFileSync(file)).digest("hex");
}

export function write(root: string, rel: string, content: string | Buffer): string {
  const file = path.join(root, ...rel.split("/"));
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, content);
  return file;
}

/** A tree like a tick server's, with the awkward cases: binary, empty, large, spaces, unicode, nesting. */
export function writeMixedTree(root: string): string[] {
  const files: Array<[string, string | Buffer]> = [
    ["EURUSD/2026-11-25.csv", tickLines("EURUSD", 2000)],
    ["EURUSD/2026-11-26.csv", tickLines("EURUSD", 500)],
    ["GBPUSD/2026-11-26.csv.gz", randomBytes(70_000)],
    ["empty.csv", ""],
    ["with space/file name with spaces.csv", tickLines("USDJPY", 10)],
    ["ünïcødé/日本円 €.csv", tickLines("USDJPY", 10)],
    ["deep/a/b/c/d/e/leaf.bin", randomBytes(1234)],
    ["large/big.bin", randomBytes(12 * 1024 * 1024 + 17)],
  ];
  for (const [rel, content] of files) write(root, rel, content);
  return files.map(([rel]) => rel);
}

export function tickLines(symbol: string, n: number, start = Date.UTC(2026, 10, 26, 10)): string {
  let out = "";
  for (let i = 0; i < n; i++) {
    const t = new Date(start + i * 137).toISOString().replace("Z", "456Z");
    out += `${t},${symbol},1.08${(100 + (i % 900)).toString()},1.08${(102 + (i % 890)).toString()},1000000\n`;
  }
  return out;
}

/** Every regular file below root (except the archive's state area) with its sha256, for byte-identity checks. */
export function treeHashes(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (dir: string, rel: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (r === ".tick-backup") continue;
      if (e.isDirectory()) walk(path.join(dir, e.name), r);
      else if (e.isFile()) out[r] = sha256(path.join(dir, e.name));
    }
  };
  walk(root, "");
  return out;
}
