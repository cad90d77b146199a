import * as fs from "node:fs/promises";
import * as path from "node:path";
import { randomUUID } from "node:crypto";
import { BackupError, messageOf } from "../errors";
import { createOnce } from "./fsutil";
import { WINDOWS_RULES, type NameRules } from "./names";

/**
 * What probing found about the filesystem the archive lives on. Written once to
 * `.tick-backup/fs-profile.json` and read by every later open, so that the stored name of a remote
 * file never changes under the archive's feet.
 */
export interface FsProfile {
  format: 1;
  probedAt: string;
  /** "windows": the disk refuses Windows' forbidden characters (NTFS, exFAT, FAT32, an SMB share), so Windows' rules apply in full */
  family: "posix" | "windows";
  rules: NameRules;
  /** largest file the filesystem can hold, when it is small enough to matter (FAT32: 4 GiB − 1 byte) */
  maxFileSize?: number;
  observed: {
    refusedChars: string;
    trailingDot: boolean;
    trailingSpace: boolean;
    reservedNames: boolean;
    nonAscii: boolean;
    caseInsensitive: boolean;
    normalizationInsensitive: boolean;
    maxName: NameRules["maxName"];
    /** modification times are kept to this many milliseconds (FAT: 2000) */
    mtimeResolutionMs: number;
    hardLinks: boolean;
  };
}

export const PROFILE_FILE = "fs-profile.json";
/** FAT12/16/32 store a file's size in 32 bits. */
export const FAT_MAX_FILE_SIZE = 2 ** 32 - 1;
const PROBE_CHARS = '<>:"|?*';

/**
 * Errors that mean the disk cannot be written at all, as opposed to "this name is not allowed here"
 * (drivers say that in many ways: EINVAL, EPERM, ENOENT, EILSEQ, ENAMETOOLONG, sshfs even EBADMSG).
 */
const DISK_ERRORS = new Set(["ENOSPC", "EROFS", "EIO", "EDQUOT", "ENOTCONN", "ESTALE", "ETIMEDOUT", "EHOSTDOWN"]);

/**
 * Finds out what the filesystem under `stateDir` accepts by trying it, in a scratch folder that is
 * removed afterwards: which characters, trailing dots and spaces, reserved device names, non-ASCII,
 * how long a name may be, whether case or Unicode normalisation tell names apart, how fine its
 * timestamps are (FAT keeps 2 s, which is also how FAT — and its 4 GiB limit — is recognised:
 * through FUSE, on Windows and on macOS the filesystem type has no reliable name).
 */
export async function probeFsProfile(stateDir: string, now = new Date()): Promise<FsProfile> {
  const dir = path.join(stateDir, `probe-${randomUUID()}`);
  await fs.mkdir(dir, { recursive: true });
  try {
    const accepts = (name: string) => tryName(dir, name);
    // A plain name must work, or the disk is not writable at all and nothing below would mean anything.
    if (!(await accepts("probe.tmp"))) throw new BackupError("PROBE_FAILED", `the archive disk (${stateDir}) does not take even a plain file name`);
    let refusedChars = "";
    for (const ch of PROBE_CHARS) if (!(await accepts(`p${ch}q`))) refusedChars += ch;
    const trailingDot = !(await accepts("p."));
    const trailingSpace = !(await accepts("p "));
    const reservedNames = !(await accepts("CON")) || !(await accepts("nul.txt"));
    const nonAscii = await accepts("é€");
    const caseInsensitive = await sameFile(dir, "Probe-Case.tmp", "PROBE-CASE.TMP");
    const normalizationInsensitive = nonAscii && (await sameFile(dir, "n\u00e9", "ne\u0301"));
    const maxName = await probeMaxName(dir, nonAscii);
    const mtimeResolutionMs = await probeMtimeResolution(dir);
    const hardLinks = await probeHardLinks(dir);

    const family = refusedChars.length > 0 ? "windows" : "posix";
    // A disk that refuses any of Windows' characters is one Windows will read: its rules apply in full,
    // even where this computer's driver is more lenient (ntfs-3g tells case apart, exfat-fuse takes "CON").
    const rules: NameRules =
      family === "windows"
        ? { ...WINDOWS_RULES, asciiOnly: !nonAscii, normalizationInsensitive, maxName }
        : {
            escapeChars: refusedChars,
            trailingDotSpace: trailingDot || trailingSpace,
            reservedNames,
            asciiOnly: !nonAscii,
            caseInsensitive,
            normalizationInsensitive,
            maxName,
          };
    return {
      format: 1,
      probedAt: now.toISOString(),
      family,
      rules,
      ...(mtimeResolutionMs >= 2000 ? { maxFileSize: FAT_MAX_FILE_SIZE } : {}),
      observed: { refusedChars, trailingDot, trailingSpace, reservedNames, nonAscii, caseInsensitive, normalizationInsensitive, maxName, mtimeResolutionMs, hardLinks },
    };
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
}

/** Creates `name` in the empty folder `dir` and sees it listed under exactly that name; leaves the folder empty. */
async function tryName(dir: string, name: string): Promise<boolean> {
  try {
    await fs.writeFile(path.join(dir, name), "", { flag: "wx" });
    return (await fs.readdir(dir)).includes(name); // a share may keep a mangled name (or, on Windows, an alternate data stream)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? "";
    if (!DISK_ERRORS.has(code)) return false;
    throw new BackupError("PROBE_FAILED", `cannot try file names on the archive disk (${path.dirname(dir)}): ${messageOf(err)}`, { cause: err });
  } finally {
    await emptyFolder(dir);
  }
}

async function emptyFolder(dir: string): Promise<void> {
  for (const entry of await fs.readdir(dir)) await fs.rm(path.join(dir, entry), { recursive: true, force: true });
}

async function sameFile(dir: string, written: string, lookedUp: string): Promise<boolean> {
  await fs.writeFile(path.join(dir, written), "");
  try {
    await fs.stat(path.join(dir, lookedUp));
    return true;
  } catch {
    return false;
  } finally {
    await emptyFolder(dir);
  }
}

/**
 * The longest name, in the unit the filesystem counts: ASCII names find the length, and a name of
 * that many three-byte characters tells UTF-16 units (NTFS, exFAT, FAT) from bytes (ext4, ZFS).
 */
async function probeMaxName(dir: string, nonAscii: boolean): Promise<NameRules["maxName"]> {
  let lo = 1;
  let hi = 255;
  if (await tryName(dir, "x".repeat(hi))) lo = hi;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (await tryName(dir, "x".repeat(mid))) lo = mid;
    else hi = mid - 1;
  }
  const unit = nonAscii && (await tryName(dir, "€".repeat(lo))) ? "utf16" : "bytes";
  return { max: lo, unit };
}

/** Sets an odd-second mtime with a fraction and reads back what the filesystem kept. */
async function probeMtimeResolution(dir: string): Promise<number> {
  const file = path.join(dir, "mtime.tmp");
  await fs.writeFile(file, "");
  try {
    const set = 1_700_000_001_234; // ms
    await fs.utimes(file, set / 1000, set / 1000);
    const got = (await fs.stat(file)).mtimeMs;
    if (Math.floor(got / 1000) % 2 === 0) return 2000; // an odd second did not survive
    const diff = Math.abs(got - set);
    return diff >= 10 ? 1000 : diff >= 1 ? 10 : 1;
  } finally {
    await emptyFolder(dir);
  }
}

async function probeHardLinks(dir: string): Promise<boolean> {
  await fs.writeFile(path.join(dir, "a.tmp"), "");
  try {
    await fs.link(path.join(dir, "a.tmp"), path.join(dir, "b.tmp"));
    return true;
  } catch {
    return false;
  } finally {
    await emptyFolder(dir);
  }
}

/**
 * The archive's profile: read from the state area, or probed and written there the first time. It is
 * never probed again, because stored names depend on it; a disk that changed under the archive is
 * another concern (the archive's filesystem identity).
 */
export async function loadProfile(stateDir: string): Promise<FsProfile> {
  const file = path.join(stateDir, PROFILE_FILE);
  try {
    const profile = JSON.parse(await fs.readFile(file, "utf8")) as FsProfile;
    if (profile.format !== 1) throw new BackupError("PROFILE_FORMAT", `${file}: format ${profile.format} is not supported by this version`);
    return profile;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") {
      if (err instanceof BackupError) throw err;
      throw new BackupError("PROFILE_DAMAGED", `${file} cannot be read (${messageOf(err)}); it records how names are stored, so the archive is not opened`, { cause: err });
    }
  }
  // Of two processes opening a new archive at once, one profile wins and both use it.
  return createOnce(file, JSON.stringify(await probeFsProfile(stateDir), null, 2) + "\n", (text) => JSON.parse(text) as FsProfile);
}
