import { ConfigError } from "../errors";
import { DirectoryTarget, type DirectoryTargetConfig } from "./directory";
import { RcloneTarget, type RcloneTargetConfig } from "./rclone";
import { S3Target, type S3TargetConfig } from "./s3";
import type { Target } from "./target";

export type TargetConfig = ({ kind: "s3" } & S3TargetConfig) | ({ kind: "rclone" } & RcloneTargetConfig) | ({ kind: "directory" } & DirectoryTargetConfig);

/** Builds the target of the configured kind (checks the settings; connects on first probe). */
export function createTarget(config: TargetConfig): Target {
  switch (config.kind) {
    case "s3":
      return new S3Target(config);
    case "rclone":
      return new RcloneTarget(config);
    case "directory":
      return new DirectoryTarget(config);
    default:
      throw new ConfigError(`unknown offsite target kind ${JSON.stringify((config as { kind: unknown }).kind)} (s3, rclone or directory)`);
  }
}

export { DirectoryTarget, RcloneTarget, S3Target, type DirectoryTargetConfig, type RcloneTargetConfig, type S3TargetConfig };
export { uploadOffsite, type OffsiteOptions, type OffsiteProgress, type OffsiteReport } from "./upload";
export { ObjectMismatch, ObjectMissing, ObjectUndecryptable, TargetFailed, TARGET_STATE, type Target, type OffsiteCopy, type PutSource } from "./target";
export { decryptBuffer, checkRecipient } from "./encrypt";
export { checkWritable, WRITE_CHECK_KEY, type WriteCheck } from "./check";
