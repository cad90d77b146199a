export * from "./errors";
export { Archive } from "./archive/archive";
export { Catalog, storedPathOf, type FileRecord, type FileVersion, type FileState } from "./archive/catalog";
export { encodeName, decodeName, NameMap, POSIX_RULES, WINDOWS_RULES, type NameRules } from "./archive/names";
export { probeFsProfile, FAT_MAX_FILE_SIZE, type FsProfile } from "./archive/fs-probe";
export { connect, fetchHostFingerprint, describeServer, type ServerConfig, type SftpSession } from "./sftp/connect";
export { fingerprintOf, normalizeFingerprint, isFingerprint } from "./sftp/fingerprint";
export { pull, type PullOptions, type PullReport, type PullProgress, type Problem } from "./sftp/pull";
export { parseGlobs, planPull } from "./sftp/plan";
