import * as fs from "node:fs";
import * as path from "node:path";
import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { tempDir } from "./tree";

const run = promisify(execFile);

export type ImageKind = "fat32" | "exfat" | "ntfs";

/** A real filesystem in an image file, mounted through FUSE (the kernel here has no FAT/exFAT/NTFS drivers). */
export interface MountedImage {
  kind: ImageKind;
  /** the mount point */
  dir: string;
  unmount(): Promise<void>;
}

/** mounted images and the loop device each holds */
const mounted = new Map<MountedImage, string | undefined>();

/**
 * Makes and mounts a fresh image (root only: FUSE block devices and loop devices). A missing tool
 * fails the test with the package to install. Every mount is undone by `unmountAll`, which the
 * tests call in `after` and which also runs when the process exits, so a failing test leaves no
 * mount or loop device behind.
 */
export async function mountImage(kind: ImageKind, sizeMiB = 64): Promise<MountedImage> {
  const work = tempDir(`tick-${kind}-`);
  const image = path.join(work, `${kind}.img`);
  const dir = path.join(work, "mnt");
  fs.mkdirSync(dir);
  let loop: string | undefined;
  try {
    fs.writeFileSync(image, "");
    fs.truncateSync(image, sizeMiB * 1024 * 1024); // sparse: costs no disk until written
    if (kind === "fat32") {
      await tool("mkfs.vfat", ["-F", "32", image], "dosfstools");
      await tool("fusefat", ["-o", "rw+", image, dir], "fusefat");
    } else if (kind === "exfat") {
      await tool("mkfs.exfat", [image], "exfatprogs");
      loop = (await tool("losetup", ["-f", "--show", image], "mount")).trim();
      await tool("mount.exfat-fuse", [loop, dir], "exfat-fuse");
    } else {
      await tool("mkntfs", ["-F", "-Q", image], "ntfs-3g");
      await tool("ntfs-3g", ["-o", "windows_names", image, dir], "ntfs-3g");
    }
  } catch (err) {
    if (loop) await run("losetup", ["-d", loop]).catch(() => undefined);
    fs.rmSync(work, { recursive: true, force: true });
    throw err;
  }
  const image_: MountedImage = {
    kind,
    dir,
    unmount: async () => {
      if (!mounted.delete(image_)) return;
      await unmountDir(dir);
      if (loop) await run("losetup", ["-d", loop]).catch(() => undefined);
      fs.rmSync(work, { recursive: true, force: true });
    },
  };
  mounted.set(image_, loop);
  return image_;
}

export async function unmountAll(): Promise<void> {
  for (const m of [...mounted.keys()]) await m.unmount();
}

/** FUSE may still be busy for a moment after the last file closes. */
export async function unmountDir(dir: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await run("umount", [dir]);
      return;
    } catch (err) {
      if (attempt >= 20) {
        await run("umount", ["-l", dir]).catch(() => undefined);
        throw err;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

async function tool(cmd: string, args: string[], pkg: string): Promise<string> {
  try {
    return (await run(cmd, args)).stdout;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") throw new Error(`${cmd} is missing: install the Debian package ${pkg} (.ci/run does)`);
    throw new Error(`${cmd} ${args.join(" ")} failed: ${(err as { stderr?: string }).stderr ?? String(err)}`);
  }
}

// Synchronous last resort when mocha exits with mounts left (a crashed test): never leave a mount behind.
process.on("exit", () => {
  const { execFileSync } = require("node:child_process") as typeof import("node:child_process");
  for (const [m, loop] of mounted) {
    try {
      execFileSync("umount", ["-l", m.dir]);
      if (loop) execFileSync("losetup", ["-d", loop]);
    } catch {
      /* nothing more to do on the way out */
    }
  }
});
