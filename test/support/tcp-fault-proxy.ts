/**
 * A TCP proxy on 127.0.0.1 between a client and any server (SFTP, S3): each new connection gets a
 * fault from a seeded plan — cut after a random number of bytes (both directions counted), stall
 * (stop forwarding for a while) after a random number of bytes, throttle to a byte rate, or none.
 * Same seed, same plan: a campaign that finds a bug can be rerun exactly. The HTTP-level faults of
 * an S3 server (5xx, dropped request, flipped byte) are in ./s3.ts; this one works below any protocol.
 */
import * as net from "node:net";

export type TcpFault =
  | { kind: "none" }
  | { kind: "cut"; afterBytes: number }
  | { kind: "stall"; afterBytes: number; ms: number }
  | { kind: "throttle"; bytesPerSec: number };

export interface TcpFaultCounts {
  connections: number;
  /** faults that actually happened (a cut planned after more bytes than the connection carried did not) */
  cut: number;
  stall: number;
  throttle: number;
  bytes: number;
}

export interface TcpFaultProxy {
  port: number;
  counts: TcpFaultCounts;
  /** decides the fault of each new connection; `rng` is the proxy's seeded generator */
  plan: (rng: () => number, connection: number) => TcpFault;
  close(): Promise<void>;
}

/** mulberry32: a small, fast, seeded PRNG (uniform in [0, 1)). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function startTcpFaultProxy(targetPort: number, seed: number, plan: TcpFaultProxy["plan"] = () => ({ kind: "none" })): Promise<TcpFaultProxy> {
  const rng = seededRandom(seed);
  const sockets = new Set<net.Socket>();
  const proxy: TcpFaultProxy = {
    port: 0,
    counts: { connections: 0, cut: 0, stall: 0, throttle: 0, bytes: 0 },
    plan,
    close: () => {
      for (const s of sockets) s.destroy();
      return new Promise<void>((r) => server.close(() => r()));
    },
  };
  const server = net.createServer((client) => {
    const n = proxy.counts.connections++;
    const fault = proxy.plan(rng, n);
    const upstream = net.connect(targetPort, "127.0.0.1");
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.setNoDelay(true);
      s.on("error", () => undefined);
      s.on("close", () => {
        sockets.delete(s);
        client.destroy();
        upstream.destroy();
      });
    }
    let carried = 0;
    let stalled = false;
    let cutDone = false;
    if (fault.kind === "throttle") proxy.counts.throttle++;
    // Both directions go through one gate, so the byte offset of a cut or stall is one number.
    const forward = (from: net.Socket, to: net.Socket) => {
      from.on("data", (chunk: Buffer) => {
        if (to.destroyed) return;
        if (cutDone) return;
        if (fault.kind === "cut" && carried + chunk.length >= fault.afterBytes) {
          const keep = fault.afterBytes - carried;
          carried += keep;
          proxy.counts.bytes += keep;
          if (keep > 0) to.write(chunk.subarray(0, keep));
          proxy.counts.cut++;
          cutDone = true;
          // half the cuts are a clean FIN after the partial data, half a hard reset
          if (rng() < 0.5) to.end(() => client.destroy());
          else { client.resetAndDestroy(); upstream.resetAndDestroy(); }
          return;
        }
        carried += chunk.length;
        proxy.counts.bytes += chunk.length;
        if (fault.kind === "stall" && !stalled && carried >= fault.afterBytes) {
          stalled = true;
          proxy.counts.stall++;
          from.pause();
          to.write(chunk);
          setTimeout(() => from.resume(), fault.ms).unref();
          return;
        }
        if (fault.kind === "throttle") {
          from.pause();
          to.write(chunk);
          setTimeout(() => from.resume(), Math.ceil((chunk.length / fault.bytesPerSec) * 1000)).unref();
          return;
        }
        if (!to.write(chunk)) {
          from.pause();
          to.once("drain", () => from.resume());
        }
      });
    };
    forward(client, upstream);
    forward(upstream, client);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  proxy.port = (server.address() as net.AddressInfo).port;
  return proxy;
}
