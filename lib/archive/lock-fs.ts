import * as fs from "node:fs";

/**
 * The filesystem calls the archive's lock (proper-lockfile) makes, one set per archive. The lock
 * proves it is still its own by reading back the mtime it last set, and it learns the disk's
 * timestamp precision once per set of calls. Two things go wrong with the shared default:
 * - the precision learned on one disk (ext4: milliseconds) is reused for an archive on another
 *   (sshfs, exFAT: seconds), whose rounded mtime then looks like someone else's: the lock is
 *   declared lost after 5 s, stops being refreshed, and another process takes it over;
 * - FAT keeps even seconds only, so half of all refreshes read back one second off.
 * So each archive gets its own set, and a read-back within the disk's resolution of the time this
 * process set reports the time set. A lock another process made is read as the disk keeps it.
 */
export function lockFs(resolutionMs: number): typeof fs {
  const setByUs = new Map<string, number>();
  const utimes = (p: fs.PathLike, atime: fs.TimeLike, mtime: fs.TimeLike, cb: fs.NoParamCallback) =>
    fs.utimes(p, atime, mtime, (err) => {
      if (!err) setByUs.set(String(p), new Date(mtime instanceof Date ? mtime : Number(mtime) * 1000).getTime());
      cb(err);
    });
  const stat = (p: fs.PathLike, cb: (err: NodeJS.ErrnoException | null, stats: fs.Stats) => void) =>
    fs.stat(p, (err, stats) => {
      const ours = setByUs.get(String(p));
      if (err || ours === undefined || Math.abs(stats.mtimeMs - ours) >= Math.max(1, resolutionMs)) return cb(err, stats);
      cb(null, Object.assign(Object.create(Object.getPrototypeOf(stats)), stats, { mtime: new Date(ours), mtimeMs: ours }));
    });
  return { ...fs, utimes, stat } as typeof fs;
}
