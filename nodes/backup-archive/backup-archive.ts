// Config node: one local archive directory that every other node points at.
import type { NodeAPI, NodeDef } from "node-red";
import type { BackupArchiveNode } from "../shared/types";
import { Archive } from "../../lib/archive/archive";

interface BackupArchiveDef extends NodeDef {
  name: string;
  path: string;
}

export = (RED: NodeAPI) => {
  RED.nodes.registerType("backup-archive", function (this: BackupArchiveNode, def: BackupArchiveDef) {
    RED.nodes.createNode(this, def);
    this.archiveName = def.name || "archive";
    this.archivePath = def.path;
    let opened: Archive | undefined;
    this.open = async () => (opened ??= await Archive.open(def.path, { name: this.archiveName }));
  });
};
