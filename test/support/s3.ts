/**
 * A real S3-compatible server (s3rver) on 127.0.0.1 behind a small recording proxy. The proxy
 * keeps every request's method, path and headers (Object Lock headers are checked there: s3rver
 * ignores them) and can inject faults: a 500 reply, a "no such bucket" reply (a 404 that is no
 * missing object), a dropped connection, or bytes flipped on the way in so the server stores
 * something other than what was sent.
 */
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { Transform } from "node:stream";
import { tempDir } from "./tree";

// s3rver has no type declarations.
// eslint-disable-next-line @typescript-eslint/no-require-imports
const S3rver = require("s3rver");

export const BUCKET = "tick-offsite";
export const ACCESS_KEY = "S3RVER";
export const SECRET_KEY = "S3RVER";

export interface RecordedRequest {
  method: string;
  url: string;
  headers: http.IncomingHttpHeaders;
}

export type Fault = "500" | "no-bucket" | "drop" | "corrupt" | undefined;

export interface S3Server {
  endpoint: string;
  /** s3rver itself, without the proxy */
  directEndpoint: string;
  requests: RecordedRequest[];
  /** decides per request whether to break it; reset to undefined to stop */
  fault: ((req: RecordedRequest) => Fault) | undefined;
  stop(): Promise<void>;
}

export async function startS3(): Promise<S3Server> {
  const server = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: tempDir("s3rver-"), configureBuckets: [{ name: BUCKET }] });
  const { port } = (await server.run()) as AddressInfo;
  return startFaultProxy(`http://127.0.0.1:${port}`, () => server.close());
}

/** The recording, fault-injecting proxy in front of any S3 server on 127.0.0.1. */
export async function startFaultProxy(upstream: string, stopUpstream: () => Promise<unknown>): Promise<S3Server> {
  const s3port = Number(new URL(upstream).port);
  const s3: S3Server = {
    endpoint: "",
    directEndpoint: upstream,
    requests: [],
    fault: undefined,
    stop: async () => {
      // close() waits for every connection to end: end them, then wait.
      const closed = new Promise((r) => proxy.close(r));
      proxy.closeAllConnections();
      await closed;
      await stopUpstream();
    },
  };
  const proxy = http.createServer((req, res) => {
    const recorded = { method: req.method ?? "", url: req.url ?? "", headers: req.headers };
    s3.requests.push(recorded);
    const fault = s3.fault?.(recorded);
    if (fault === "500" || fault === "no-bucket") {
      req.resume();
      req.on("end", () => {
        res.writeHead(fault === "500" ? 500 : 404, { "content-type": "application/xml" });
        res.end(fault === "500" ? "<Error><Code>InternalError</Code><Message>injected</Message></Error>" : "<Error><Code>NoSuchBucket</Code><Message>The specified bucket does not exist</Message></Error>");
      });
      return;
    }
    if (fault === "drop") {
      req.once("data", () => req.socket.destroy());
      req.once("end", () => req.socket.destroy());
      return;
    }
    const upstream = http.request({ host: "127.0.0.1", port: s3port, method: req.method, path: req.url, headers: req.headers }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    upstream.on("error", () => res.destroy());
    // A client cut off mid-request (a dropped or stalled connection) must not leave the server
    // waiting for the rest of the body: that request would never end, nor would the server's close().
    res.on("close", () => {
      if (!res.writableFinished) upstream.destroy();
    });
    let flipped = false;
    const body =
      fault === "corrupt"
        ? new Transform({
            transform(chunk: Buffer, _e, cb) {
              if (!flipped && chunk.length > 0) {
                chunk = Buffer.from(chunk);
                chunk[chunk.length >> 1] ^= 0xff;
                flipped = true;
              }
              cb(null, chunk);
            },
          })
        : undefined;
    if (body) req.pipe(body).pipe(upstream);
    else req.pipe(upstream);
  });
  await new Promise<void>((r) => proxy.listen(0, "127.0.0.1", r));
  s3.endpoint = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
  return s3;
}

/** Whether a request is an upload of object data (a PUT of a whole object or of one part). */
export function isDataPut(r: RecordedRequest, key?: string): boolean {
  return r.method === "PUT" && (key === undefined || decodeURIComponent(r.url.split("?")[0]).endsWith(`/${key}`));
}

export function partNumber(r: RecordedRequest): number | undefined {
  const m = /[?&]partNumber=(\d+)/.exec(r.url);
  return m ? Number(m[1]) : undefined;
}
