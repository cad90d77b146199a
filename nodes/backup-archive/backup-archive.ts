// Config node: one local archive directory that every other node points at.
import type { NodeAPI, NodeDef } from "node-red";
import { EventEmitter } from "node:events";
import * as path from "node:path";
import type { BackupArchiveNode, HaMqttNode, RunOutcome } from "../shared/types";
import { Archive } from "../../lib/archive/archive";
import { exists } from "../../lib/archive/fsutil";
import { STATE_DIR } from "../../lib/archive/paths";
import { BackupError } from "../../lib/errors";
import { numberOr } from "../shared/node-helpers";
import { publishHealth, trackHealth } from "./health";

interface BackupArchiveDef extends NodeDef {
  name: string;
  path: string;
  /** an ha-mqtt node: publish this archive's health to Home Assistant */
  ha?: string;
  /** a pull older than this is a problem in Home Assistant (0: never) */
  staleHours?: number | string;
}

export = (RED: NodeAPI) => {
  RED.nodes.registerType("backup-archive", function (this: BackupArchiveNode, def: BackupArchiveDef) {
    RED.nodes.createNode(this, def);
    this.archiveName = def.name || "archive";
    this.archivePath = def.path;
    let opening: Promise<Archive> | undefined;
    // Remembers the archive opened at this path, so that an unplugged disk's empty mount point is never taken for a new archive.
    const userDir = (RED.settings as { userDir?: string }).userDir;
    const knownDir = userDir ? path.join(userDir, "tick-backup") : undefined;
    // Every open proves the archive is still in its place (the same archive, on the same disk), so
    // that no run reads or writes another disk's archive mounted at the path while Node-RED ran.
    this.open = async () => {
      const archive = await (opening ??= Archive.open(def.path, { name: this.archiveName, knownDir }).catch((err) => {
        opening = undefined; // a disk plugged in later gets another chance
        throw err;
      }));
      await archive.checkPlace();
      return archive;
    };
    // Health and alerts read and keep their state in an archive that exists; only a run creates one.
    this.openExisting = async () => {
      if (!(await exists(path.join(def.path || "/nonexistent", STATE_DIR, "archive.json")))) throw new BackupError("ARCHIVE_NOT_FOUND", `no archive at ${def.path} yet`);
      return this.open();
    };
    const outcomes = new EventEmitter();
    outcomes.setMaxListeners(0);
    this.record = (outcome: RunOutcome) => outcomes.emit("outcome", outcome);
    this.onRecord = (listener) => {
      outcomes.on("outcome", listener);
      return () => outcomes.off("outcome", listener);
    };

    const ha = def.ha ? (RED.nodes.getNode(def.ha) as HaMqttNode | null) : null;
    if (def.ha && !ha) this.warn(`Home Assistant: the ha-mqtt node ${def.ha} is missing or disabled; health is not published`);
    const staleHours = Math.max(0, numberOr(def.staleHours, 3));
    this.staleHours = staleHours;
    const health = trackHealth(this, { staleHours, nodeExists: (id) => RED.nodes.getNode(id) !== null });
    this.health = () => health.tracker.settled().then(() => health.tracker.current);
    this.onHealth = (listener) => health.onChange(listener);
    const published = ha ? publishHealth(this, ha, health) : undefined;
    this.haNote = () => published?.note();
    this.on("close", (removed: boolean, done: () => void) => {
      Promise.all([published?.close(removed), health.close()]).then(() => done(), () => done());
    });
  });
};
