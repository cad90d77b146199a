// Config node: where the offsite copy goes (S3-compatible bucket, rclone remote, or a folder on a second disk).
import type { NodeAPI, NodeDef } from "node-red";
import { checkWritable, createTarget, type TargetConfig } from "../../lib/offsite";
import { dialogCredentials, editorEndpoint } from "../shared/node-helpers";
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
      this.config = () => targetConfigOf(def, this.credentials);
    },
    { credentials: { accessKeyId: { type: "text" }, secretAccessKey: { type: "password" } } },
  );

  // The editor's "Test": the dialog's settings (credentials typed there, or the deployed node's)
  // reach the target and store one small object at a fixed key; nothing is deleted.
  editorEndpoint(RED, "offsite-target", "test", async (body) => {
    const target = createTarget(targetConfigOf(body as unknown as OffsiteTargetDef, dialogCredentials(RED, body, ["accessKeyId", "secretAccessKey"])));
    try {
      return await checkWritable(target, AbortSignal.timeout(60_000));
    } finally {
      await target.close();
    }
  });
};

/** The node's settings as lib/offsite takes them: one mapping for the deployed node and the editor's Test. */
function targetConfigOf(def: OffsiteTargetDef, credentials: Partial<OffsiteTargetCredentials> | undefined): TargetConfig {
  const text = (v: unknown) => (typeof v === "string" ? v.trim() : "");
  switch (def.kind) {
    case "s3":
      return {
        kind: "s3",
        endpoint: text(def.endpoint),
        region: text(def.region),
        bucket: text(def.bucket),
        prefix: text(def.prefix),
        forcePathStyle: def.forcePathStyle === true || String(def.forcePathStyle) === "true",
        storageClass: text(def.storageClass) || undefined,
        compatibleChecksums: def.compatibleChecksums === true || String(def.compatibleChecksums) === "true",
        objectLock: def.objectLockMode ? { mode: def.objectLockMode, days: Number(def.objectLockDays) } : undefined,
        accessKeyId: credentials?.accessKeyId ?? "",
        secretAccessKey: credentials?.secretAccessKey ?? "",
      };
    case "rclone":
      return { kind: "rclone", remote: text(def.remote), rcloneBinary: text(def.rcloneBinary) || undefined, rcloneConfig: text(def.rcloneConfig) || undefined };
    default:
      return { kind: def.kind, path: text(def.path) } as TargetConfig;
  }
}

function where(def: OffsiteTargetDef): string {
  if (def.kind === "s3") return `s3 ${def.bucket}${def.prefix ? "/" + def.prefix : ""}`;
  if (def.kind === "rclone") return `rclone ${def.remote}`;
  return `folder ${def.path}`;
}
