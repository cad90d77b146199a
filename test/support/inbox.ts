import * as util from "node:util";

/* eslint-disable @typescript-eslint/no-explicit-any */

/** Messages arriving at a test-helper node, with a way to wait for one that matches. */
export class Inbox {
  readonly msgs: any[] = [];
  private waiters: Array<{ match: (m: any) => boolean; resolve: (m: any) => void }> = [];

  constructor(node: { on(event: "input", fn: (msg: any) => void): unknown }) {
    node.on("input", (msg: any) => {
      this.msgs.push(msg);
      this.waiters = this.waiters.filter((w) => !(w.match(msg) && (w.resolve(msg), true)));
    });
  }

  wait(match: (m: any) => boolean, what: string, timeoutMs = 30_000): Promise<any> {
    const seen = this.msgs.find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${util.inspect(this.msgs, { depth: 4 })}`)), timeoutMs);
      this.waiters.push({ match, resolve: (m) => (clearTimeout(timer), resolve(m)) });
    });
  }
}
