// Config node: where the offsite copy goes (S3-compatible bucket, rclone remote, or a folder on a second disk).
import type { NodeAPI, NodeDef } from "node-red";
import type { TargetConfig } from "../../lib/offsite";
import type { OffsiteTargetCredentials, OffsiteTargetNode } from "../shared/types";

interface OffsiteTargetDef extends NodeDef {
  kind: "s3" | "rclone" | "directory";
  endpoint: string;
  region: string;
  bucket: string;
  prefix: string;
  forcePathStyle: boolean;
  storageClass: string;
  compatibleChecksums: boolean;
  objectLockMode: "" | "GOVERNANCE" | "COMPLIANCE";
  objectLockDays: number | string;
  remote: string;
  rcloneBinary: string;
  rcloneConfig: string;
  path: string;
  encryptTo: string;
}

export = (RED: NodeAPI) => {
  RED.nodes.registerType<OffsiteTargetNode, OffsiteTargetDef, object, OffsiteTargetCredentials>(
    "offsite-target",
    function (this: OffsiteTargetNode, def: OffsiteTargetDef) {
      RED.nodes.createNode(this, def);
      this.targetName = def.name || where(def);
      this.encryptTo = def.encryptTo?.trim() || undefined;
      this.config = (): TargetConfig => {
        switch (def.kind) {
          case "s3":
            return {
              kind: "s3",
              endpoint: def.endpoint?.trim(),
              region: def.region?.trim(),
              bucket: def.bucket?.trim(),
              prefix: def.prefix?.trim(),
              forcePathStyle: Boolean(def.forcePathStyle),
              storageClass: def.storageClass?.trim() || undefined,
              compatibleChecksums: Boolean(def.compatibleChecksums),
              objectLock: def.objectLockMode ? { mode: def.objectLockMode, days: Number(def.objectLockDays) } : undefined,
              accessKeyId: this.credentials?.accessKeyId ?? "",
              secretAccessKey: this.credentials?.secretAccessKey ?? "",
            };
          case "rclone":
            return { kind: "rclone", remote: def.remote?.trim(), rcloneBinary: def.rcloneBinary?.trim() || undefined, rcloneConfig: def.rcloneConfig?.trim() || undefined };
          default:
            return { kind: def.kind, path: def.path?.trim() } as TargetConfig;
        }
      };
    },
    { credentials: { accessKeyId: { type: "text" }, secretAccessKey: { type: "password" } } },
  );
};

function where(def: OffsiteTargetDef): string {
  if (def.kind === "s3") return `s3 ${def.bucket}${def.prefix ? "/" + def.prefix : ""}`;
  if (def.kind === "rclone") return `rclone ${def.remote}`;
  return `folder ${def.path}`;
}
