import * as fs from "node:fs";
import * as path from "node:path";
import { Archive } from "../../lib/archive/archive";
import type { FileRecord } from "../../lib/archive/catalog";
import { sha256, tempDir, write } from "./tree";

/** An archive holding `files` as the pull would have left them (written and recorded). */
export async function archiveWith(files: Record<string, string | Buffer>, state: FileRecord["state"] = "final") {
  const dir = tempDir("offsite-archive-");
  const archive = await Archive.open(dir, { name: "offsite-test" });
  await add(archive, files, state);
  return archive;
}

export async function add(archive: Archive, files: Record<string, string | Buffer>, state: FileRecord["state"] = "final"): Promise<void> {
  const now = new Date().toISOString();
  const records: FileRecord[] = Object.entries(files).map(([rel, content]) => {
    const file = write(archive.root, rel, content);
    return { path: rel, size: fs.statSync(file).size, mtime: 1_700_000_000, sha256: sha256(file), state, firstPulledAt: now, pulledAt: now };
  });
  // As the pull does, a changed file keeps the rest of its record (its copies among them).
  await archive.update((cat) => cat.commit(...records.map((r) => ({ ...cat.get(r.path), ...r }))));
}

export function stateFiles(archive: Archive): string[] {
  return fs.readdirSync(path.join(archive.stateDir, "offsite"));
}

export { tempDir };
