import * as fs from "node:fs/promises";
import type { Archive } from "../archive/archive";
import { storedPathOf } from "../archive/catalog";
import { Aborted, ConfigError } from "../errors";
import { connect, type ServerConfig } from "../sftp/connect";
import { writeManifests } from "./manifest";
import { originHashes } from "./origin";
import { fetchCopy, placeCopy, quarantine } from "./repair";
import { blankVerifyReport, finish, type VerifyProgress, type VerifyReport } from "./report";

/** A file a pull just archived, as its report lists it. */
export interface PulledFileRef {
  path: string;
  size: number;
  sha256: string;
}

export interface OriginCheckOptions {
  archive: Archive;
  server?: ServerConfig;
  remoteDir: string;
  files: PulledFileRef[];
  signal?: AbortSignal;
  onProgress?: (p: VerifyProgress) => void;
  now?: () => Date;
}

/**
 * Asks the server for the sha256 of the files a pull just fetched and compares it with the hash
 * taken while they downloaded. A disagreement marks the file suspect and fetches it once more: if
 * the new copy matches the server, the first download was bad and is replaced (the bad copy goes
 * to quarantine); if not, the difference is reported.
 */
export async function originCheck(options: OriginCheckOptions): Promise<VerifyReport> {
  const { archive } = options;
  if (!options.server) throw new ConfigError("the origin check needs an sftp-server on the hash-verify node");
  const started = Date.now();
  const now = options.now ?? (() => new Date());
  const report = blankVerifyReport(archive.identity.name, "origin", started);
  const files = options.files.filter((f) => f && typeof f.path === "string" && typeof f.sha256 === "string" && Number.isFinite(f.size));
  const bytesTotal = files.reduce((s, f) => s + f.size, 0);
  report.coverage.totalFiles = (await archive.readCatalog()).size;
  if (files.length === 0) return finish(report, started);

  options.onProgress?.({ phase: "asking server", files: 0, filesTotal: files.length, bytes: 0, bytesTotal, elapsedMs: 0 });
  const session = await connect(options.server, { signal: options.signal });
  try {
    const result = await originHashes(session, options.remoteDir, files.map((f) => ({ path: f.path, size: f.size })), options.signal);
    if (options.signal?.aborted) throw new Aborted(); // a cut-off answer is not "unavailable"
    if (!result.available) {
      report.origin.unavailable = true;
      report.origin.reason = result.reason;
      return finish(report, started);
    }
    const byPath = new Map(files.map((f) => [f.path, f]));
    let changed = false;
    for (const answer of result.answers) {
      if (options.signal?.aborted) throw new Aborted();
      const file = byPath.get(answer.path)!;
      if ("missing" in answer) {
        report.counts.skipped++;
        continue;
      }
      report.counts.checked++;
      report.origin.checked++;
      report.bytes += file.size;
      if (answer.sha256 === file.sha256) {
        report.counts.ok++;
        report.origin.matched++;
        continue;
      }
      report.origin.mismatched++;
      await setResult(archive, file, "suspect", now());
      const { part, sha256 } = await fetchCopy(session, archive, options.remoteDir, file.path, file.size, options.signal);
      const storedAs = sha256 === answer.sha256 ? await replaceDownload(archive, file, part, sha256, now()) : undefined;
      if (storedAs) {
        // The first download was wrong and the server is consistent: the archive now holds its bytes.
        report.counts.ok++;
        report.origin.repulled.push(file.path);
        report.quarantined.push(storedAs);
        changed = true;
        continue;
      }
      await fs.rm(part, { force: true });
      report.counts.mismatched++;
      report.mismatches.push(file.path);
      report.problems.push({
        code: "ORIGIN_MISMATCH",
        path: file.path,
        message:
          sha256 === file.sha256
            ? `${file.path}: the server's sha256sum says ${answer.sha256.slice(0, 12)}… but its SFTP serves the bytes we archived (${file.sha256.slice(0, 12)}…); marked suspect`
            : `${file.path}: the server's sha256sum, the archived copy and a second download all differ; marked suspect (is the file being rewritten on the server?)`,
      });
    }
    if (changed) await archive.update(async (cat) => void (await writeManifests(archive.stateDir, cat.all())));
  } finally {
    await session.end();
  }
  report.coverage.files = report.counts.checked;
  report.coverage.percent = report.coverage.totalFiles ? Math.round((report.coverage.files / report.coverage.totalFiles) * 1000) / 10 : 0;
  return finish(report, started);
}

async function setResult(archive: Archive, file: PulledFileRef, result: "suspect" | "ok", at: Date): Promise<void> {
  await archive.update(async (cat) => {
    const current = cat.get(file.path);
    if (current && current.sha256 === file.sha256) await cat.patch(file.path, { verifyResult: result, verifiedAt: at.toISOString() });
  });
}

/**
 * Swaps a bad first download for the checked second one, if the archive still holds the first.
 * Returns where the bad copy went, or undefined when a pull changed the file meanwhile.
 */
async function replaceDownload(archive: Archive, file: PulledFileRef, part: string, sha256: string, at: Date): Promise<string | undefined> {
  return archive.update(async (cat) => {
    const current = cat.get(file.path);
    if (!current || current.sha256 !== file.sha256 || current.size !== file.size) return undefined;
    const storedAs = await quarantine(archive, storedPathOf(current), at);
    if (!(await placeCopy(archive, part, storedPathOf(current)))) return undefined;
    await cat.patch(file.path, { sha256, verifyResult: "ok", verifiedAt: at.toISOString() });
    return storedAs;
  });
}
