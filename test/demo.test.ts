/**
 * `npm start`, the README's first command: the demo (dist/demo/start.js) in its own process, on free
 * ports and in a temporary DEMO_DIR. Its first pull must archive the demo server's files, the offsite
 * disk must get the final ones, the demo broker must carry the archive's health, the editor must
 * answer, no secret may sit in flows.json, and Ctrl+C must stop it cleanly.
 */
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import { Recorder } from "./support/brokers";
import { freePort } from "./support/net";
import { tempDir } from "./support/tree";
import { waitFor } from "./support/wait";

const START = path.join(__dirname, "..", "demo", "start.js");

/** Every file below `dir`, relative, sorted. */
function files(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true, withFileTypes: true }) as fs.Dirent[])
    .filter((e) => e.isFile())
    .map((e) => path.relative(dir, path.join(e.parentPath ?? e.path, e.name)))
    .sort();
}

describe("the demo (npm start)", function () {
  this.timeout(120_000);
  let demo: ChildProcess | undefined;
  let output = "";
  afterEach(() => demo?.kill("SIGKILL"));

  it("pulls the demo server's ticks, copies them offsite, publishes the health, and stops on Ctrl+C", async function () {
    const dir = tempDir("tick-demo-");
    const [editor, sftp, mqtt] = [await freePort(), await freePort(), await freePort()];
    demo = spawn(process.execPath, [START], { env: { ...process.env, DEMO_DIR: dir, PORT: String(editor), DEMO_SFTP_PORT: String(sftp), DEMO_MQTT_PORT: String(mqtt) }, stdio: ["ignore", "pipe", "pipe"] });
    demo.stdout!.on("data", (b) => (output += b));
    demo.stderr!.on("data", (b) => (output += b));
    const exited = new Promise<number | null>((resolve) => demo!.once("exit", (code) => resolve(code)));
    const shown = () => output.slice(-3000);

    await waitFor("the demo to start", () => (demo!.exitCode !== null ? assert.fail(`the demo ended: ${shown()}`) : /Node-RED editor {3}http:\/\/127\.0\.0\.1:\d+\//.test(output)), 60_000);
    const mqttUrl = /MQTT broker {7}(mqtt:\/\/127\.0\.0\.1:\d+)/.exec(output)?.[1];
    assert.ok(mqttUrl, shown());
    const ha = await Recorder.connect(mqttUrl, ["tick-backup/#", "homeassistant/#"]);
    try {
      // The first pull, 3 s after the start: every file of the demo server, byte for byte.
      const served = path.join(dir, "server");
      const archive = path.join(dir, "archive");
      const state = await ha.wait("the health after the first pull and offsite copy", () => {
        const m = ha.last("tick-backup/demo/state");
        const s = m && JSON.parse(m.payload);
        return s?.last_pull && s.last_offsite ? s : undefined;
      }, 60_000).catch((err) => assert.fail(`${err.message}\n${shown()}`));
      const archived = files(archive).filter((f) => !f.startsWith(".tick-backup"));
      const history = files(served).filter((f) => !f.endsWith(new Date().toISOString().slice(0, 10) + ".csv"));
      assert.ok(history.length >= 4 * 5, `5 days of history for 4 symbols on the demo server: ${history.join(", ")}`);
      for (const f of history) assert.ok(archived.includes(f), `${f} archived`);
      for (const f of history) assert.deepEqual(fs.readFileSync(path.join(archive, f)), fs.readFileSync(path.join(served, f)), `${f} byte-identical`);
      assert.ok(state.archive_files >= history.length, JSON.stringify(state));
      assert.ok(ha.last("homeassistant/binary_sensor/tick_backup_demo/problem/config"), "discovery is published");
      assert.equal(ha.last("tick-backup/availability")?.payload, "online");

      // The final files (older days) are on the offsite disk.
      const offsite = files(path.join(dir, "offsite-disk"));
      for (const f of history) assert.ok(offsite.includes(f), `${f} on the offsite disk`);

      // The editor answers; the demo server's password is in the credentials file, not in flows.json.
      const page = await fetch(`http://127.0.0.1:${editor}/`);
      assert.equal(page.status, 200);
      const creds = JSON.parse(fs.readFileSync(path.join(dir, "userdir", "flows_cred.json"), "utf8")) as Record<string, { password?: string }>;
      const password = Object.values(creds).find((c) => c.password)?.password;
      assert.ok(password && password.length >= 20, "a password was made for the demo server");
      assert.ok(!fs.readFileSync(path.join(dir, "userdir", "flows.json"), "utf8").includes(password), "no secret in flows.json");
      assert.ok(!output.includes(password), "no secret in the output");
    } finally {
      await ha.close();
    }

    demo.kill("SIGINT");
    assert.equal(await exited, 0, shown());
    assert.match(output, /SIGINT: stopping the demo/);
  });
});
