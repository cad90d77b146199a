// Node disk-space: on each message, check the archive's disk (still the archive's filesystem? how full?),
// any extra paths, and how much data arrives per day; report a level ok | warn | critical.
import type { NodeAPI, Node, NodeDef } from "node-red";
import type { FsIdentity } from "../../lib/archive/filesystem";
import { blankDiskReport, checkDisk, type DiskReport } from "../../lib/disk/check";
import { parseThresholds, type ThresholdFields } from "../../lib/disk/space";
import { BackupError, ConfigError } from "../../lib/errors";
import { formatBytes } from "../shared/node-helpers";
import { serveRuns } from "../shared/serve-runs";
import type { BackupArchiveNode } from "../shared/types";

interface DiskSpaceDef extends NodeDef, ThresholdFields {
  archive: string;
  extraPaths: string;
}

export = (RED: NodeAPI) => {
  RED.nodes.registerType("disk-space", function (this: Node, def: DiskSpaceDef) {
    RED.nodes.createNode(this, def);
    const archive = RED.nodes.getNode(def.archive) as BackupArchiveNode | null;
    const seen = new Map<string, FsIdentity>();

    serveRuns(this, {
      kind: "disk",
      archive,
      blank: () => blankDiskReport(archive?.archiveName ?? "", archive?.archivePath ?? ""),
      run: async (_msg, { progress }) => {
        if (!archive) throw new ConfigError("no backup-archive configured");
        progress("checking", true);
        return checkDisk({
          archiveName: archive.archiveName,
          archivePath: archive.archivePath,
          open: () => archive.open(),
          extraPaths: (def.extraPaths ?? "").split(/[\n,]/).map((p) => p.trim()).filter(Boolean),
          thresholds: parseThresholds(def),
          seen,
        });
      },
      status: statusOf,
      // Warnings reach the archive node's listeners (and so the alert node); a critical disk also reaches catch nodes.
      failure: (report) => (report.level === "critical" ? new BackupError(report.problems[0]?.code ?? "DISK_CRITICAL", report.problems.map((p) => p.message).join("; ")) : undefined),
    });
  });
};

/** `412 GB free · 208 d`, or the archive disk's trouble in capitals. */
function statusOf(r: DiskReport) {
  const fill = r.level === "critical" ? ("red" as const) : r.level === "warn" ? ("yellow" as const) : ("green" as const);
  const d = r.archiveDisk;
  if (!d.mounted) {
    const code = r.problems[0]?.code;
    const text =
      code === "ARCHIVE_FS_CHANGED" ? "ARCHIVE DISK CHANGED" : code === "ARCHIVE_REPLACED" ? "ANOTHER ARCHIVE HERE (wrong disk?)" : d.state === "missing" ? "archive folder missing" : "ARCHIVE DISK NOT MOUNTED";
    return { fill, shape: "ring" as const, text };
  }
  const days = r.volume?.daysUntilFull30 ?? r.volume?.daysUntilFull7;
  const parts = [`${formatBytes(d.free ?? 0)} free`, days === null || days === undefined ? "no growth yet" : `${Math.floor(days)} d`];
  const offline = r.extra.filter((e) => !e.mounted).length;
  if (offline > 0) parts.push(`${offline} not mounted`);
  return { fill, shape: "dot" as const, text: parts.join(" · ") };
}
