import * as fs from "node:fs/promises";
import * as path from "node:path";

/**
 * Which filesystem a folder lives on, as far as a process without special rights can tell. Recorded
 * in the archive's identity when it is created and compared before anything writes, so that a
 * backup never fills the root disk through an empty mount point.
 */
export interface FsIdentity {
  /** st_dev as "major:minor" */
  dev: string;
  /** statfs f_type, as a name where known ("ext4" family is "ext") or hex */
  type: string;
  /** total size in bytes (statfs blocks × block size) */
  totalBytes: number;
  /** the folder where this filesystem is mounted (the highest ancestor on the same device) */
  mountPoint: string;
  /** what is mounted there (/dev/sdb1, nas:/export, //nas/share, pool/dataset), where the system says (Linux) */
  source?: string;
  /** the type name the mount table gives (ext4, exfat, nfs4 …), where the system says */
  fsType?: string;
}

const TYPE_NAMES: Record<number, string> = {
  0xef53: "ext",
  0x01021994: "tmpfs",
  0x9123683e: "btrfs",
  0x58465342: "xfs",
  0x2fc12fc1: "zfs",
  0x6969: "nfs",
  0xff534d42: "cifs",
  0xfe534d42: "smb2",
  0x4d44: "vfat",
  0x2011bab0: "exfat",
  0x5346544e: "ntfs",
  0x65735546: "fuse",
  0x794c7630: "overlay",
  0xf2f52010: "f2fs",
  0x73717368: "squashfs",
  0x3153464a: "jfs",
  0x52654973: "reiserfs",
};

/** Filesystems whose mount source names the same storage after a remount or reboot. */
const STABLE_SOURCE = /^(nfs|nfs4|cifs|smb3?|zfs|fuse\.sshfs|fuse\.rclone|9p|virtiofs|ceph|glusterfs)$/;

function devOf(st: { dev: number }): string {
  // Linux encodes st_dev as (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12) for the old range.
  const dev = st.dev;
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | (Math.floor(dev / 0x1000) & 0xfff00);
  return `${major}:${minor}`;
}

/**
 * The cheap check done before every lock: the same device number and type as recorded means the
 * same filesystem, with no walk up the tree and no mount table. Anything else takes the full probe.
 */
export async function isRecordedFilesystem(dir: string, recorded: FsIdentity): Promise<boolean> {
  const [st, sf] = await Promise.all([fs.stat(dir), fs.statfs(dir)]);
  return matchesRecorded(st, sf, recorded);
}

/** The same test on figures the caller already has. */
export function matchesRecorded(st: { dev: number }, sf: { type: number }, recorded: FsIdentity): boolean {
  return devOf(st) === recorded.dev && typeName(sf.type) === recorded.type;
}

function typeName(type: number): string {
  return TYPE_NAMES[type] ?? `0x${type.toString(16)}`;
}

/** Probes the filesystem of an existing folder. */
export async function probeFilesystem(dir: string): Promise<FsIdentity> {
  const real = await fs.realpath(dir);
  const st = await fs.stat(real);
  const sf = await fs.statfs(real);
  let mountPoint = real;
  for (;;) {
    const parent = path.dirname(mountPoint);
    if (parent === mountPoint) break;
    const pst = await fs.stat(parent).catch(() => undefined);
    if (!pst || pst.dev !== st.dev) break;
    mountPoint = parent;
  }
  const identity: FsIdentity = {
    dev: devOf(st),
    type: typeName(sf.type),
    totalBytes: sf.blocks * sf.bsize,
    mountPoint,
  };
  const mount = await mountEntry(mountPoint, identity.dev);
  if (mount) {
    identity.source = mount.source;
    identity.fsType = mount.fsType;
  }
  return identity;
}

/** The mount table's line for a mount point (Linux /proc/self/mountinfo; the last one wins, as mounts stack). */
async function mountEntry(mountPoint: string, dev: string): Promise<{ source: string; fsType: string } | undefined> {
  const text = await fs.readFile("/proc/self/mountinfo", "utf8").catch(() => undefined);
  if (!text) return undefined;
  let found: { source: string; fsType: string } | undefined;
  for (const line of text.split("\n")) {
    const [left, right] = line.split(" - ");
    if (!right) continue;
    const f = left.split(" ");
    const [fsType, source] = right.split(" ");
    if (unescapeMount(f[4]) === mountPoint && f[2] === dev) found = { source: unescapeMount(source), fsType };
  }
  return found;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/**
 * The ways `current` is not the filesystem `recorded` (empty when it is the same one).
 *
 * Device numbers are not stable: a USB disk can come back as another sdX after a reboot, and
 * network, btrfs and zfs mounts get a fresh anonymous number on each mount. So a different device
 * number alone is no alarm; it is one when the size (and, for network and zfs mounts, the mount
 * source) differs too. A different filesystem type always is. The mount point is reported but not
 * compared: a disk the automounter puts elsewhere, with the archive path updated, is still the disk.
 */
export function filesystemDifferences(recorded: FsIdentity, current: FsIdentity): string[] {
  const out: string[] = [];
  if (recorded.type !== current.type) out.push(`type ${current.type} instead of ${recorded.type}`);
  const sameSource = recorded.source !== undefined && recorded.source === current.source && STABLE_SOURCE.test(current.fsType ?? "");
  if (recorded.dev !== current.dev && recorded.totalBytes !== current.totalBytes && !sameSource) {
    out.push(`device ${current.dev} of ${current.totalBytes} bytes instead of ${recorded.dev} of ${recorded.totalBytes} bytes`);
  }
  return out;
}

/** "/dev/sdb1 (ext4) mounted at /media/backup" — for messages a person reads. */
export function describeFilesystem(f: FsIdentity): string {
  const what = f.source ? `${f.source} (${f.fsType ?? f.type})` : `a ${f.type} filesystem (device ${f.dev})`;
  return `${what} mounted at ${f.mountPoint}`;
}
