// Real receivers on 127.0.0.1 for the alert channels: an SMTP server (smtp-server) that keeps what it
// receives, and an HTTP server that records every request (method, path, headers, body) and answers
// with the status a test sets per path.
import * as http from "node:http";
import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";

export interface ReceivedMail {
  from: string;
  to: string[];
  user?: string;
  raw: string;
}

export interface SmtpSink {
  port: number;
  mails: ReceivedMail[];
  /** logins tried (user, password) */
  logins: Array<{ user: string; password: string }>;
  stop(): Promise<void>;
}

/** An SMTP server that accepts `user`/`password` (or, with refuse, rejects every recipient). */
export async function startSmtpSink(options: { user: string; password: string; refuse?: boolean }): Promise<SmtpSink> {
  const mails: ReceivedMail[] = [];
  const logins: SmtpSink["logins"] = [];
  const server = new SMTPServer({
    secure: false,
    authOptional: false,
    allowInsecureAuth: true, // plain SMTP on 127.0.0.1; the product's TLS settings are nodemailer's own
    disabledCommands: ["STARTTLS"],
    logger: false,
    onAuth(auth, _session, cb) {
      logins.push({ user: auth.username ?? "", password: auth.password ?? "" });
      if (auth.username === options.user && auth.password === options.password) cb(null, { user: auth.username });
      else cb(new Error("Invalid username or password"));
    },
    onRcptTo(address, _session, cb) {
      if (options.refuse) {
        const err = new Error("mailbox unavailable") as Error & { responseCode: number };
        err.responseCode = 550;
        return cb(err);
      }
      cb();
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = [];
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        mails.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "", to: session.envelope.rcptTo.map((r) => r.address), user: session.user as string | undefined, raw: Buffer.concat(chunks).toString("utf8") });
        cb();
      });
    },
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.server.address() as AddressInfo).port;
  return { port, mails, logins, stop: () => new Promise((resolve) => server.close(() => resolve())) };
}

export interface HttpRequestSeen {
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
  body: string;
  json?: unknown;
}

export interface HttpSink {
  url: string;
  requests: HttpRequestSeen[];
  /** the status to answer for a path (default 200) */
  statusFor: Map<string, number>;
  stop(): Promise<void>;
}

export async function startHttpSink(): Promise<HttpSink> {
  const requests: HttpRequestSeen[] = [];
  const statusFor = new Map<string, number>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks).toString("utf8");
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch {
        /* not JSON */
      }
      const path = req.url ?? "/";
      requests.push({ method: req.method ?? "", path, headers: req.headers, body, json });
      const status = statusFor.get(path) ?? 200;
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(status === 200 ? "{}" : JSON.stringify({ error: "sink told to fail" }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    statusFor,
    stop: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
