export * from "./errors";
export { Archive } from "./archive/archive";
export { Catalog, type FileRecord, type FileVersion, type FileState } from "./archive/catalog";
export { connect, fetchHostFingerprint, describeServer, type ServerConfig, type SftpSession } from "./sftp/connect";
export { fingerprintOf, normalizeFingerprint, isFingerprint } from "./sftp/fingerprint";
export { pull, type PullOptions, type PullReport, type PullProgress, type Problem } from "./sftp/pull";
export { parseGlobs, planPull } from "./sftp/plan";
export * as offsite from "./offsite";
