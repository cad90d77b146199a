/**
 * A shared rate limit in bytes per second for every transfer of one run. Each request books its
 * bytes on a timeline; the wait it is told is how far that booking lies in the future. One second
 * of burst is allowed, so a limit never slows a line that is idle anyway.
 */
export class Throttle {
  private nextFree = 0;

  constructor(private readonly bytesPerSecond: number, private readonly now: () => number = Date.now) {}

  static fromKBps(kbps: number | undefined): Throttle | undefined {
    return kbps && kbps > 0 ? new Throttle(kbps * 1024) : undefined;
  }

  /** Books `bytes` and returns the milliseconds to wait before sending them. */
  book(bytes: number): number {
    const now = this.now();
    const start = Math.max(this.nextFree, now - 1000);
    this.nextFree = start + (bytes / this.bytesPerSecond) * 1000;
    return Math.max(0, start - now);
  }
}
