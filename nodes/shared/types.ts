import type { Node } from "node-red";
import type { Archive } from "../../lib/archive/archive";
import type { ServerConfig } from "../../lib/sftp/connect";
import type { HaLink } from "../../lib/health/ha-link";
import type { TargetConfig } from "../../lib/offsite";
import type { HealthSnapshot, ProblemReason } from "../../lib/health/snapshot";
import type { RunOutcome } from "../../lib/report";

/** What other nodes may use of a `backup-archive` config node. */
export interface BackupArchiveNode extends Node {
  archiveName: string;
  archivePath: string;
  /**
   * Opens the archive on first use (the disk may be plugged in after Node-RED started); every call
   * proves it is still in its place (checkPlace): not another disk's archive, not a stale copy.
   */
  open(): Promise<Archive>;
  /** opens the archive only if it has been created (by a run): what health and alerts use, so that they never create one */
  openExisting(): Promise<Archive>;
  /**
   * Every node hands each run's outcome here: its report when the run ended, or a failure when it
   * could not run at all. Listeners (the Home Assistant health, the alert node) keep the picture.
   */
  record(outcome: RunOutcome): void;
  /** Subscribes to outcomes; returns the unsubscribe function (call it on close). */
  onRecord(listener: (outcome: RunOutcome) => void): () => void;
  /** A short note for node status when the archive publishes to Home Assistant and the broker cannot be reached. */
  haNote(): string | undefined;
  /** hours without a successful pull after which the archive counts as stale (0: never) */
  staleHours: number;
  /** The health snapshot and its problems (the reasons Home Assistant shows), once the saved one is read. */
  health(): Promise<{ snapshot: HealthSnapshot; problems: ProblemReason[] }>;
  /** Subscribes to health changes (and the heartbeat); returns the unsubscribe function. */
  onHealth(listener: (snapshot: HealthSnapshot, problems: ProblemReason[]) => void): () => void;
}

export type { RunReport, RunOutcome } from "../../lib/report";

export interface SftpServerCredentials {
  password?: string;
  privateKey?: string;
  passphrase?: string;
}

/** What other nodes may use of an `sftp-server` config node. */
export interface SftpServerNode extends Node<SftpServerCredentials> {
  config(): ServerConfig;
}

export interface HaMqttCredentials {
  username?: string;
  password?: string;
}

/** What other nodes may use of an `ha-mqtt` config node. */
export interface HaMqttNode extends Node<HaMqttCredentials> {
  /** absent when the configuration is unusable (configError says why) */
  link?: HaLink;
  configError?: string;
  discoveryPrefix: string;
  baseTopic: string;
}

export interface OffsiteTargetCredentials {
  accessKeyId?: string;
  secretAccessKey?: string;
}

/** What other nodes may use of an `offsite-target` config node. */
export interface OffsiteTargetNode extends Node<OffsiteTargetCredentials> {
  targetName: string;
  /** the target's settings with its credentials (never put these in a message or status) */
  config(): TargetConfig;
  /** the age recipient objects are encrypted to, if any */
  encryptTo: string | undefined;
}
