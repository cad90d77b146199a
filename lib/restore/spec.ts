import * as fs from "node:fs";
import * as path from "node:path";
import { STATE_DIR } from "../archive/paths";
import { ConfigError, messageOf } from "../errors";
import { createTarget, type TargetConfig } from "../offsite";
import { TARGET_STATE } from "../offsite/target";
import { ArchiveSource, TargetSource, type RestoreSource } from "./source";

/**
 * Where to read from, as the user names it:
 * - a folder: an archive (has `.tick-backup/`) or a folder target (has `.tick-backup/target.json`)
 * - `dir:/path`: a folder target, explicitly
 * - `s3://bucket/prefix`: settings and keys from TICK_BACKUP_S3_* (or AWS_ACCESS_KEY_ID/…) variables
 * - `rclone:remote:path`: the user's rclone and rclone.conf
 * - `@name`: target `name` of the JSON config file (`--config`, TICK_BACKUP_CONFIG)
 */
export interface TargetSpec {
  spec: string;
  env?: NodeJS.ProcessEnv;
  configFile?: string;
  /** a file holding the age secret key (AGE-SECRET-KEY-1…) */
  identityFile?: string;
}

interface ConfigFile {
  targets?: Record<string, TargetConfig & { identityFile?: string }>;
}

export async function loadTargetSpec(options: TargetSpec): Promise<RestoreSource> {
  const env = options.env ?? process.env;
  const spec = options.spec.trim();
  if (!spec) throw new ConfigError("no source given (--from <archive folder | target spec>)");
  let config: TargetConfig;
  let identityFile = options.identityFile ?? env.TICK_BACKUP_AGE_IDENTITY_FILE;
  if (spec.startsWith("@")) {
    const file = options.configFile ?? env.TICK_BACKUP_CONFIG;
    if (!file) throw new ConfigError(`${spec} names a target of a config file: give --config <file> or TICK_BACKUP_CONFIG`);
    const entry = readConfig(file).targets?.[spec.slice(1)];
    if (!entry) throw new ConfigError(`${file} has no target named ${JSON.stringify(spec.slice(1))} (under "targets")`);
    const { identityFile: fromFile, ...rest } = entry;
    config = rest as TargetConfig;
    if (fromFile && !identityFile) identityFile = path.resolve(path.dirname(file), fromFile);
  } else if (spec.startsWith("s3://")) {
    const [bucket, ...prefix] = spec.slice(5).split("/");
    if (!bucket) throw new ConfigError(`${spec}: no bucket (s3://bucket/prefix)`);
    const accessKeyId = env.TICK_BACKUP_S3_ACCESS_KEY_ID ?? env.AWS_ACCESS_KEY_ID;
    const secretAccessKey = env.TICK_BACKUP_S3_SECRET_ACCESS_KEY ?? env.AWS_SECRET_ACCESS_KEY;
    if (!accessKeyId || !secretAccessKey) throw new ConfigError("S3 keys missing: set TICK_BACKUP_S3_ACCESS_KEY_ID and TICK_BACKUP_S3_SECRET_ACCESS_KEY");
    config = {
      kind: "s3",
      bucket,
      prefix: prefix.join("/"),
      endpoint: env.TICK_BACKUP_S3_ENDPOINT || undefined,
      region: env.TICK_BACKUP_S3_REGION || "us-east-1",
      forcePathStyle: yes(env.TICK_BACKUP_S3_PATH_STYLE),
      compatibleChecksums: yes(env.TICK_BACKUP_S3_COMPATIBLE_CHECKSUMS),
      accessKeyId,
      secretAccessKey,
    };
  } else if (spec.startsWith("rclone:")) {
    config = { kind: "rclone", remote: spec.slice(7), rcloneBinary: env.TICK_BACKUP_RCLONE || undefined, rcloneConfig: env.RCLONE_CONFIG || undefined };
  } else if (spec.startsWith("dir:")) {
    config = { kind: "directory", path: path.resolve(spec.slice(4)) };
  } else {
    const dir = path.resolve(spec);
    if (!fs.existsSync(dir)) throw new ConfigError(`${dir} does not exist`);
    if (fs.existsSync(path.join(dir, TARGET_STATE, "target.json"))) config = { kind: "directory", path: dir };
    else if (fs.existsSync(path.join(dir, STATE_DIR))) return ArchiveSource.open(dir);
    else throw new ConfigError(`${dir} is neither an archive nor a folder target (no ${STATE_DIR}/ inside)`);
  }
  // --identity on the command line beats the environment; else the key in the environment, then a key file.
  return new TargetSource(createTarget(config), options.identityFile ? readIdentity({}, options.identityFile) : readIdentity(env, identityFile));
}

/** The age secret key: TICK_BACKUP_AGE_IDENTITY in `env`, or the first AGE-SECRET-KEY line of the identity file. */
export function readIdentity(env: NodeJS.ProcessEnv, file?: string): string | undefined {
  if (env.TICK_BACKUP_AGE_IDENTITY) return env.TICK_BACKUP_AGE_IDENTITY.trim();
  if (!file) return undefined;
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read the identity file ${file}: ${messageOf(err)}`);
  }
  const line = text.split(/\r?\n/).find((l) => l.trim().startsWith("AGE-SECRET-KEY-"));
  if (!line) throw new ConfigError(`${file} holds no age secret key (a line starting with AGE-SECRET-KEY-)`);
  return line.trim();
}

function readConfig(file: string): ConfigFile {
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(`cannot read the config file ${file}: ${messageOf(err)}`);
  }
  try {
    return JSON.parse(text) as ConfigFile;
  } catch (err) {
    throw new ConfigError(`the config file ${file} is not valid JSON: ${messageOf(err)}`);
  }
}

function yes(v: string | undefined): boolean {
  return v === "1" || v === "true" || v === "yes";
}
