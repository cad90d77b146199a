// demo/start.ts — what `npm start` runs: a tick-recording "server" (synthetic ticks behind an SFTP
// server) and a Node-RED with this package and its example flow, all on 127.0.0.1, so the product
// can be tried without a server of one's own. Everything lives in .demo/ (git-ignored), or in
// DEMO_DIR when that is set.
import * as crypto from "node:crypto";
import * as fs from "node:fs";
import * as http from "node:http";
import * as path from "node:path";
import RED = require("node-red");
import { utils } from "ssh2";
import { startFakeSftp, type FakeSftpServer } from "./sftp-server";
import { startDemoBroker } from "./broker";
import { startTicker, writeHistory } from "./ticks";

const PACKAGE = "node-red-contrib-tick-backup";
const ROOT = projectRoot(__dirname);
const DEMO = path.resolve(process.env.DEMO_DIR || path.join(ROOT, ".demo"));
const DIRS = { server: path.join(DEMO, "server"), archive: path.join(DEMO, "archive"), offsite: path.join(DEMO, "offsite-disk"), userdir: path.join(DEMO, "userdir") };
const SYMBOLS = ["EURUSD", "GBPUSD", "USDJPY", "XAUUSD"];
const USERNAME = "ticks";

async function main(): Promise<void> {
  const sftpPort = portFromEnv("DEMO_SFTP_PORT", 2222);
  const editorPort = portFromEnv("PORT", 1880);
  for (const dir of Object.values(DIRS)) fs.mkdirSync(dir, { recursive: true });

  writeHistory(DIRS.server, { symbols: SYMBOLS, days: 5, linesPerDay: 10_000 });
  const ticker = startTicker(DIRS.server, { symbols: SYMBOLS, intervalMs: 5000, linesPerTick: 10 });

  // A new password at every start (nobody else on this machine should read the demo server), but
  // a host key that stays, so that the fingerprint pinned in a flow the user deployed stays valid.
  const password = crypto.randomBytes(18).toString("base64url");
  let sftp: FakeSftpServer;
  try {
    sftp = await startFakeSftp({ root: DIRS.server, port: sftpPort, username: USERNAME, password, hostKey: demoHostKey() });
  } catch (err) {
    ticker.stop();
    throw new Error(`cannot start the demo SFTP server on 127.0.0.1:${sftpPort} (${(err as Error).message}); set DEMO_SFTP_PORT to a free port`);
  }

  // DEMO_MQTT_URL points the demo at a broker of one's own (Home Assistant's); otherwise it runs its own.
  const mqtt = process.env.DEMO_MQTT_URL
    ? { url: process.env.DEMO_MQTT_URL, port: Number(new URL(process.env.DEMO_MQTT_URL).port || 1883), note: "(your broker, from DEMO_MQTT_URL)", close: async () => undefined }
    : await startDemoBroker(portFromEnv("DEMO_MQTT_PORT", 1883));

  linkPackage(DIRS.userdir);
  writeFlows(DIRS.userdir, { port: sftp.port, hostFingerprint: sftp.hostFingerprint, password, mqttUrl: mqtt.url });

  // Node-RED's embedding API without express: both admin and node routes sit at "/", admin first,
  // exactly as Node-RED's own red.js mounts them (looked up per request: they exist after RED.init).
  type Handler = (req: http.IncomingMessage, res: http.ServerResponse, next: () => void) => void;
  const server = http.createServer((req, res) => {
    const [admin, nodes] = [RED.httpAdmin as unknown as Handler, RED.httpNode as unknown as Handler];
    admin(req, res, () => nodes(req, res, () => {
      res.statusCode = 404;
      res.end("Not found\n");
    }));
  });
  RED.init(server, {
    userDir: DIRS.userdir,
    flowFile: "flows.json",
    credentialSecret: false, // demo only: credentials sit in flows_cred.json as plain JSON
    uiHost: "127.0.0.1",
    uiPort: editorPort,
    httpAdminRoot: "/",
    httpNodeRoot: "/",
    editorTheme: { tours: false, projects: { enabled: false } },
    telemetry: { enabled: false, updateNotification: false }, // a demo asks nobody for consent and calls nobody
    logging: { console: { level: "info", metrics: false, audit: false } },
  } as Parameters<typeof RED.init>[1]);
  await RED.start();
  await new Promise<void>((resolve, reject) => {
    server.once("error", (err) => reject(new Error(`cannot listen on 127.0.0.1:${editorPort} (${err.message}); set PORT to a free port`)));
    server.listen(editorPort, "127.0.0.1", resolve);
  });

  const rel = (p: string) => path.relative(process.cwd(), p) || ".";
  console.log([
    "",
    "  Tick backup demo",
    `  Node-RED editor   http://127.0.0.1:${editorPort}/`,
    `  SFTP server       127.0.0.1:${sftp.port}, user ${USERNAME}, host key ${sftp.hostFingerprint}`,
    `  tick data         ${rel(DIRS.server)}  (${SYMBOLS.join(", ")}: 5 days of history, today's files grow every 5 s)`,
    `  archive           ${DIRS.archive}  (pulled 3 s after start, then every minute)`,
    `  MQTT broker       ${mqtt.url}  (Home Assistant discovery under homeassistant/, health under tick-backup/demo/)`,
    ...(mqtt.note ? [`                    ${mqtt.note}`] : []),
    ...(process.env.DEMO_MQTT_URL ? [] : [`                    watch it: npx mqtt sub -h 127.0.0.1 -p ${mqtt.port} -t 'tick-backup/#' -v`]),
    `  offsite disk      ${DIRS.offsite}  (copied after each pull; delete it to see an unplugged disk)`,
    `  alerts            the debug sidebar ("alerts"): press "test alert: fail", then "test alert: ok" (the recovery note follows 5 min later)`,
    `                    the problem entity with its reasons on the broker: tick-backup/demo/… ; channels: double-click the alert node`,
    `  Stop with Ctrl+C. To start over, stop and delete ${rel(DEMO)}/.`,
    "",
  ].join("\n"));

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) process.exit(1); // a second Ctrl+C: do not wait any longer
    stopping = true;
    console.log(`\n${signal}: stopping the demo …`);
    ticker.stop();
    await RED.stop().catch((err: Error) => console.error("Node-RED stop:", err.message));
    server.closeAllConnections();
    await Promise.all([sftp.close(), mqtt.close(), new Promise((resolve) => server.close(resolve))]);
    process.exit(0);
  };
  process.on("SIGINT", () => void stop("SIGINT"));
  process.on("SIGTERM", () => void stop("SIGTERM"));
}

// The package is loaded the way a user installs it, as a module in the user dir's node_modules, so
// that the palette manager and Import > Examples show it. A symlink to the project is enough:
// Node-RED follows it when it scans node_modules.
function linkPackage(userdir: string): void {
  const modules = path.join(userdir, "node_modules");
  const link = path.join(modules, PACKAGE);
  fs.mkdirSync(modules, { recursive: true });
  try {
    if (path.resolve(modules, fs.readlinkSync(link)) === ROOT) return;
  } catch {
    // absent, or not a link: replaced below
  }
  fs.rmSync(link, { recursive: true, force: true });
  fs.symlinkSync(ROOT, link, process.platform === "win32" ? "junction" : "dir");
}

// The example flow with the demo's values. A flows.json the user has deployed is kept; only the
// demo server's port and fingerprint are brought up to date, and its password (new at every start)
// goes to flows_cred.json, never into flows.json.
function writeFlows(userdir: string, demo: { port: number; hostFingerprint: string; password: string; mqttUrl: string }): void {
  type FlowNode = Record<string, unknown> & { id: string; type: string };
  const example = JSON.parse(fs.readFileSync(path.join(ROOT, "examples", "tick-backup.json"), "utf8")) as FlowNode[];
  const serverId = example.find((n) => n.type === "sftp-server")!.id;
  const haNode = example.find((n) => n.type === "ha-mqtt")!;
  const flowsFile = path.join(userdir, "flows.json");
  let flows: FlowNode[];
  if (fs.existsSync(flowsFile)) {
    flows = JSON.parse(fs.readFileSync(flowsFile, "utf8")) as FlowNode[];
  } else {
    // Only the pull runs every minute (the rest follows it); the scrub, drill, disk check and the test alerts keep their own schedules and buttons.
    const pullId = example.find((n) => n.type === "sftp-pull")!.id;
    const startsPull = (n: FlowNode) => ((n.wires as string[][] | undefined) ?? []).some((out) => out.includes(pullId));
    flows = example.map((n) => {
      switch (n.type) {
        case "inject": return startsPull(n) ? { ...n, name: "every minute", repeat: "60", once: true, onceDelay: 3 } : n;
        case "backup-archive": return { ...n, name: "demo", path: DIRS.archive };
        case "offsite-target": return { ...n, name: "demo offsite disk", kind: "directory", path: DIRS.offsite };
        default: return n;
      }
    });
  }
  const server = flows.find((n) => n.id === serverId);
  if (server) Object.assign(server, { name: "demo tick server", host: "127.0.0.1", port: demo.port, username: USERNAME, hostFingerprint: demo.hostFingerprint });
  else console.warn(`flows.json has no node ${serverId} (the demo's sftp-server): not updating it`);
  // The demo's archive publishes its health to the demo broker (a flows.json from before it had one gets it).
  let ha = flows.find((n) => n.id === haNode.id);
  if (!ha) {
    flows.push((ha = { ...haNode }));
    const archive = flows.find((n) => n.type === "backup-archive" && !n.ha);
    if (archive) archive.ha = haNode.id;
  }
  Object.assign(ha, { name: process.env.DEMO_MQTT_URL ? "your broker" : "demo broker", broker: demo.mqttUrl });
  // A flows.json from before the alert node gets the example's alert part.
  if (!flows.some((n) => n.type === "alert")) flows.push(...example.filter((n) => n.id.startsWith("e7a1c0de")));
  fs.writeFileSync(flowsFile, JSON.stringify(flows, null, 2) + "\n");

  const credFile = path.join(userdir, "flows_cred.json");
  const creds = fs.existsSync(credFile) ? (JSON.parse(fs.readFileSync(credFile, "utf8")) as Record<string, Record<string, string>>) : {};
  creds[serverId] = { ...creds[serverId], password: demo.password };
  if (process.env.DEMO_MQTT_USERNAME) creds[haNode.id] = { username: process.env.DEMO_MQTT_USERNAME, password: process.env.DEMO_MQTT_PASSWORD ?? "" };
  fs.writeFileSync(credFile, JSON.stringify(creds, null, 2) + "\n", { mode: 0o600 });
}

function demoHostKey(): string {
  const file = path.join(DEMO, "ssh_host_ed25519_key"); // beside, not inside, the served tree
  if (!fs.existsSync(file)) fs.writeFileSync(file, utils.generateKeyPairSync("ed25519").private, { mode: 0o600 });
  return fs.readFileSync(file, "utf8");
}

function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  const port = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${name}=${raw} is not a TCP port`);
  return port;
}

// dist/demo/start.js and demo/start.ts sit at different depths: look for our package.json.
function projectRoot(from: string): string {
  for (let dir = from; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    const pkg = path.join(dir, "package.json");
    if (fs.existsSync(pkg) && (JSON.parse(fs.readFileSync(pkg, "utf8")) as { name?: string }).name === PACKAGE) return dir;
  }
  throw new Error(`cannot find the ${PACKAGE} project above ${from}`);
}

main().catch((err: Error) => {
  console.error(`demo: ${err.message}`);
  process.exit(1);
});
