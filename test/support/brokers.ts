/**
 * Real MQTT brokers on 127.0.0.1 for tests: an in-process aedes, and a real mosquitto started with
 * its own config, password file and free port (Debian package `mosquitto`). Plus a recording
 * subscriber (mqtt.js) that plays Home Assistant's side.
 */
import { ChildProcess, execFileSync, spawn } from "node:child_process";
import * as fs from "node:fs";
import * as net from "node:net";
import * as os from "node:os";
import * as path from "node:path";
import * as mqtt from "mqtt";
import { Aedes } from "aedes";
import { freePort } from "./net";

export const MOSQUITTO = "/usr/sbin/mosquitto";

export interface Broker {
  url: string;
  port: number;
  /** stops the broker (clients see their connection drop) */
  stop(): Promise<void>;
}

export interface Credentials {
  username: string;
  password: string;
}

/** An in-process aedes on 127.0.0.1 (a given port lets a test bring a broker "back"). */
export async function startAedes(options: { port?: number; credentials?: Credentials } = {}): Promise<Broker & { logins: string[] }> {
  const logins: string[] = [];
  const broker = await Aedes.createBroker({
    authenticate: (_client, username, password, done) => {
      if (username) logins.push(username);
      if (!options.credentials) return done(null, true);
      const ok = username === options.credentials.username && password?.toString() === options.credentials.password;
      done(ok ? null : Object.assign(new Error("bad login"), { returnCode: 4 as const }), ok);
    },
  });
  const server = net.createServer(broker.handle);
  const port = options.port ?? (await freePort());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", resolve);
  });
  const sockets = new Set<net.Socket>();
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  return {
    url: `mqtt://127.0.0.1:${port}`,
    port,
    logins,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/**
 * A real mosquitto with a password file. Started as root it drops to the `mosquitto` user before it
 * opens its log, so its directory belongs to that user. Fails (never skips) when mosquitto is missing.
 */
export async function startMosquitto(credentials: Credentials, options: { tls?: boolean } = {}): Promise<Broker & { dir: string; ca?: string; readLog(): string; kill(): void }> {
  if (!fs.existsSync(MOSQUITTO)) throw new Error(`${MOSQUITTO} is missing: install the Debian package mosquitto (.ci/run does)`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "tick-mosquitto-"));
  const port = await freePort();
  const passwd = path.join(dir, "passwd");
  const log = path.join(dir, "mosquitto.log");
  fs.writeFileSync(passwd, "");
  execFileSync("/usr/bin/mosquitto_passwd", ["-b", passwd, credentials.username, credentials.password]);
  const conf = path.join(dir, "mosquitto.conf");
  const tls = options.tls ? makeCertificates(dir) : undefined;
  fs.writeFileSync(conf, [
    `listener ${port} 127.0.0.1`,
    ...(tls ? [`cafile ${tls.caFile}`, `certfile ${tls.certFile}`, `keyfile ${tls.keyFile}`] : []),
    "allow_anonymous false",
    `password_file ${passwd}`,
    "persistence false",
    `log_dest file ${log}`,
    "log_type all",
    "",
  ].join("\n"));
  fs.chmodSync(passwd, 0o600);
  if (process.getuid?.() === 0) {
    const uid = Number(execFileSync("id", ["-u", "mosquitto"]).toString());
    const gid = Number(execFileSync("id", ["-g", "mosquitto"]).toString());
    for (const f of [dir, passwd, conf, ...(tls ? [tls.certFile, tls.keyFile, tls.caFile] : [])]) fs.chownSync(f, uid, gid);
  }
  const child: ChildProcess = spawn(MOSQUITTO, ["-c", conf], { stdio: ["ignore", "pipe", "pipe"] });
  let output = "";
  child.stdout!.on("data", (d) => (output += d));
  child.stderr!.on("data", (d) => (output += d));
  const readLog = () => (fs.existsSync(log) ? fs.readFileSync(log, "utf8") : "") + output;
  await waitForPort(port, child, readLog);
  return {
    url: `${tls ? "mqtts" : "mqtt"}://127.0.0.1:${port}`,
    port,
    dir,
    ca: tls ? fs.readFileSync(tls.caFile, "utf8") : undefined,
    readLog,
    kill: () => child.kill("SIGKILL"),
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A private CA and a server certificate for 127.0.0.1 signed by it (openssl, Debian package openssl). */
function makeCertificates(dir: string): { caFile: string; certFile: string; keyFile: string } {
  const f = (name: string) => path.join(dir, name);
  const ssl = (...args: string[]) => execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
  ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=tick-backup test CA", "-keyout", f("ca.key"), "-out", f("ca.crt"));
  ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", f("server.key"), "-out", f("server.csr"));
  fs.writeFileSync(f("ext.cnf"), "subjectAltName=IP:127.0.0.1\n");
  ssl("x509", "-req", "-in", f("server.csr"), "-CA", f("ca.crt"), "-CAkey", f("ca.key"), "-CAcreateserial", "-days", "2", "-extfile", f("ext.cnf"), "-out", f("server.crt"));
  return { caFile: f("ca.crt"), certFile: f("server.crt"), keyFile: f("server.key") };
}

async function waitForPort(port: number, child: ChildProcess, readLog: () => string): Promise<void> {
  const start = Date.now();
  for (;;) {
    if (child.exitCode !== null) throw new Error(`mosquitto exited with ${child.exitCode}: ${readLog()}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = net.connect(port, "127.0.0.1", () => {
        s.destroy();
        resolve(true);
      });
      s.on("error", () => resolve(false));
    });
    if (ok) return;
    if (Date.now() - start > 10_000) throw new Error(`mosquitto did not listen on ${port}: ${readLog()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Received {
  topic: string;
  payload: string;
  retain: boolean;
}

/** Home Assistant's side: subscribes and records everything, with waits for what a test expects. */
export class Recorder {
  readonly messages: Received[] = [];
  private listeners: Array<() => void> = [];

  private constructor(readonly client: mqtt.MqttClient) {
    client.on("message", (topic, payload, packet) => {
      this.messages.push({ topic, payload: payload.toString("utf8"), retain: packet.retain });
      for (const l of this.listeners) l();
    });
  }

  static async connect(url: string, topics: string[], login?: Credentials & { ca?: string }): Promise<Recorder> {
    const client = await mqtt.connectAsync(url, { clientId: `ha-recorder-${Math.random().toString(16).slice(2, 8)}`, reconnectPeriod: 200, ...login });
    const r = new Recorder(client);
    await client.subscribeAsync(topics, { qos: 1 });
    return r;
  }

  /** the latest message on a topic */
  last(topic: string): Received | undefined {
    for (let i = this.messages.length - 1; i >= 0; i--) if (this.messages[i].topic === topic) return this.messages[i];
    return undefined;
  }

  on(topic: string): Received[] {
    return this.messages.filter((m) => m.topic === topic);
  }

  /** waits until `match` holds over what has arrived (checked on every message) */
  wait<T>(what: string, match: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
    const now = match();
    if (now) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const check = () => {
        const v = match();
        if (!v) return;
        cleanup();
        resolve(v);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${JSON.stringify(this.messages.map((m) => `${m.topic} ${m.payload.slice(0, 80)}`), null, 1)}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        this.listeners = this.listeners.filter((l) => l !== check);
      };
      this.listeners.push(check);
    });
  }

  async publish(topic: string, payload: string, retain = false): Promise<void> {
    await this.client.publishAsync(topic, payload, { qos: 1, retain });
  }

  close(): Promise<void> {
    return this.client.endAsync(true);
  }
}
