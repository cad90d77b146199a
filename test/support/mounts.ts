import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as os from "node:os";
import * as path from "node:path";
import sinon from "sinon";
import * as filesystem from "../../lib/archive/filesystem";
import type { FsIdentity } from "../../lib/archive/filesystem";

/**
 * Mounts for the "wrong disk" tests: a small tmpfs stands for the backup disk, a bind mount of it
 * for the disk plugged in at the archive path. Real mounts need root with CAP_SYS_ADMIN (CI runs as
 * root). Where mounting is not permitted (an unprivileged container), and only then, the same
 * steps are emulated: the disk's files move in and out of the mount point, and the filesystem
 * probe and check-disk-space are told the emulated disk's identity and size. A notice says so.
 * TICK_TEST_MOUNT=emulate forces the emulation (to test it).
 */
export const mountMode: "real" | "emulated" = detectMode();

const mounted: string[] = [];

export function mountTmpfs(dir: string, sizeMiB = 16): void {
  if (mountMode === "real") execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeMiB}m,mode=0755`, "tick-test-disk", dir], { stdio: "pipe" });
  else emulated.mountTmpfs(dir, sizeMiB);
  mounted.push(dir);
}

/** Shows `from` at `to` as well (a disk "plugged in" at a second place). */
export function bindMount(from: string, to: string): void {
  if (mountMode === "real") execFileSync("mount", ["--bind", from, to], { stdio: "pipe" });
  else emulated.bind(from, to);
  mounted.push(to);
}

export function unmount(dir: string): void {
  if (mountMode === "real") execFileSync("umount", [dir], { stdio: "pipe" });
  else emulated.unmount(dir);
  const i = mounted.lastIndexOf(dir);
  if (i >= 0) mounted.splice(i, 1);
}

export function unmountAll(): void {
  while (mounted.length > 0) {
    const dir = mounted.pop()!;
    try {
      if (mountMode === "real") execFileSync("umount", ["-l", dir], { stdio: "pipe" });
      else emulated.unmount(dir);
    } catch {
      /* already gone */
    }
  }
}

function detectMode(): "real" | "emulated" {
  const why = process.env.TICK_TEST_MOUNT === "emulate" ? "TICK_TEST_MOUNT=emulate" : mountRefusal();
  if (!why) return "real";
  process.stderr.write(`NOTE: mounting is not possible here (${why}); the filesystem tests emulate the tmpfs and bind mounts with an injected filesystem identity.\n`);
  return "emulated";
}

function mountRefusal(): string | undefined {
  const dir = fs.mkdtempSync(path.join(fs.realpathSync(os.tmpdir()), "tick-mount-probe-"));
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tick-test-probe", dir], { stdio: "pipe" });
    execFileSync("umount", [dir], { stdio: "pipe" });
    return undefined;
  } catch (err) {
    return String((err as { stderr?: Buffer }).stderr ?? err).trim() || "mount failed";
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** The emulation: where each emulated disk's files are now, and stubs that answer for them. */
const emulated = (() => {
  const disks = new Map<string, { identity: FsIdentity; sizeBytes: number }>(); // by store path
  const plugged = new Map<string, string>(); // mount point → store
  const hidden = new Map<string, string>(); // mount point → where its own files wait while a disk is mounted over it
  let stubs: sinon.SinonSandbox | undefined;
  let next = 900;

  const moveAll = (from: string, to: string) => {
    for (const name of fs.readdirSync(from)) fs.renameSync(path.join(from, name), path.join(to, name));
  };
  /** The emulated disk a path is on, with the folder it shows at. */
  const diskOf = (p: string): { disk: { identity: FsIdentity; sizeBytes: number }; at: string } | undefined => {
    let real: string;
    try {
      real = fs.realpathSync(p);
    } catch {
      return undefined;
    }
    const inside = (dir: string) => real === dir || real.startsWith(dir + path.sep);
    for (const [at, store] of plugged) if (inside(at)) return { disk: disks.get(store)!, at };
    for (const [store, disk] of disks) if (inside(store) && ![...plugged.values()].includes(store)) return { disk, at: store };
    return undefined;
  };
  const used = (dir: string): number => {
    let total = 0;
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      total += e.isDirectory() ? used(p) : Math.ceil(fs.statSync(p).size / 4096) * 4096; // tmpfs counts pages of file data
    }
    return total;
  };
  const install = () => {
    if (stubs) return;
    stubs = sinon.createSandbox();
    const probe = filesystem.probeFilesystem;
    const probeStub = stubs.stub(filesystem, "probeFilesystem").callsFake(async (dir: string) => {
      const found = diskOf(dir);
      return found ? { ...found.disk.identity, mountPoint: found.at } : probe(dir);
    });
    stubs.stub(filesystem, "matchesRecorded").returns(false); // always take the (emulated) full probe
    stubs.stub(filesystem, "isRecordedFilesystem").callsFake(async (dir: string, recorded: FsIdentity) => {
      const now = await probeStub(dir);
      return now.dev === recorded.dev && now.type === recorded.type;
    });
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const cds = require("check-disk-space") as { default: (p: string) => Promise<{ diskPath: string; free: number; size: number }> };
    const measure = cds.default;
    stubs.stub(cds, "default").callsFake(async (p: string) => {
      const found = diskOf(p);
      if (!found) return measure(p);
      return { diskPath: found.at, size: found.disk.sizeBytes, free: found.disk.sizeBytes - used(found.at) };
    });
  };

  return {
    mountTmpfs(store: string, sizeMiB: number): void {
      install();
      const sizeBytes = sizeMiB * 1024 * 1024;
      disks.set(fs.realpathSync(store), { sizeBytes, identity: { dev: `0:${next++}`, type: "tmpfs", totalBytes: sizeBytes, mountPoint: store, source: "tick-test-disk", fsType: "tmpfs" } });
    },
    bind(store: string, at: string): void {
      const s = fs.realpathSync(store);
      const a = fs.realpathSync(at);
      if (fs.readdirSync(a).length > 0) {
        const stash = fs.mkdtempSync(path.join(os.tmpdir(), "tick-hidden-"));
        moveAll(a, stash);
        hidden.set(a, stash);
      }
      moveAll(s, a);
      plugged.set(a, s);
    },
    unmount(dir: string): void {
      const d = fs.realpathSync(dir);
      const store = plugged.get(d);
      if (store) {
        moveAll(d, store);
        plugged.delete(d);
        const stash = hidden.get(d);
        if (stash) {
          moveAll(stash, d);
          fs.rmdirSync(stash);
          hidden.delete(d);
        }
        return;
      }
      if (disks.delete(d)) {
        for (const name of fs.readdirSync(d)) fs.rmSync(path.join(d, name), { recursive: true, force: true }); // a tmpfs forgets
        if (disks.size === 0 && stubs) {
          stubs.restore();
          stubs = undefined;
        }
      }
    },
  };
})();
