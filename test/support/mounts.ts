import { execFileSync } from "node:child_process";

/**
 * Real mounts for the "wrong disk" tests: a small tmpfs stands for the backup disk. Needs root
 * (CI runs as root); every mount made here is undone by unmountAll().
 */
const mounted: string[] = [];

export function mountTmpfs(dir: string, sizeMiB = 16): void {
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${sizeMiB}m,mode=0755`, "tick-test-disk", dir], { stdio: "pipe" });
  mounted.push(dir);
}

/** Shows `from` at `to` as well (a disk "plugged in" at a second place). */
export function bindMount(from: string, to: string): void {
  execFileSync("mount", ["--bind", from, to], { stdio: "pipe" });
  mounted.push(to);
}

export function unmount(dir: string): void {
  execFileSync("umount", [dir], { stdio: "pipe" });
  const i = mounted.lastIndexOf(dir);
  if (i >= 0) mounted.splice(i, 1);
}

export function unmountAll(): void {
  while (mounted.length > 0) {
    const dir = mounted.pop()!;
    try {
      execFileSync("umount", ["-l", dir], { stdio: "pipe" });
    } catch {
      /* already gone */
    }
  }
}
