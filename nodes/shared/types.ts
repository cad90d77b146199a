import type { Node } from "node-red";
import type { Archive } from "../../lib/archive/archive";
import type { ServerConfig } from "../../lib/sftp/connect";

/** What other nodes may use of a `backup-archive` config node. */
export interface BackupArchiveNode extends Node {
  archiveName: string;
  archivePath: string;
  /** opens the archive on first use (the disk may be plugged in after Node-RED started) */
  open(): Promise<Archive>;
}

export interface SftpServerCredentials {
  password?: string;
  privateKey?: string;
  passphrase?: string;
}

/** What other nodes may use of an `sftp-server` config node. */
export interface SftpServerNode extends Node<SftpServerCredentials> {
  config(): ServerConfig;
}
