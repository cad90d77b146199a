// Config node: the MQTT broker Home Assistant listens to. One connection, shared by every archive
// that publishes its health there; secrets only in credentials.
import type { NodeAPI, NodeDef } from "node-red";
import { HaLink, testBroker } from "../../lib/health/ha-link";
import { messageOf } from "../../lib/errors";
import { dialogCredentials, editorEndpoint } from "../shared/node-helpers";
import type { HaMqttCredentials, HaMqttNode } from "../shared/types";

interface HaMqttDef extends NodeDef {
  broker: string;
  discoveryPrefix: string;
  baseTopic: string;
  ca?: string;
  reconnectSeconds?: number | string;
}

export = (RED: NodeAPI) => {
  RED.nodes.registerType<HaMqttNode, HaMqttDef, object, HaMqttCredentials>(
    "ha-mqtt",
    function (this: HaMqttNode, def: HaMqttDef) {
      RED.nodes.createNode(this, def);
      this.discoveryPrefix = (def.discoveryPrefix || "homeassistant").trim();
      this.baseTopic = (def.baseTopic || "tick-backup").trim();
      const reconnect = Number(def.reconnectSeconds);
      try {
        this.link = new HaLink({
          broker: def.broker,
          discoveryPrefix: this.discoveryPrefix,
          baseTopic: this.baseTopic,
          username: this.credentials?.username,
          password: this.credentials?.password,
          ca: def.ca?.trim() || undefined,
          clientId: `tick-backup-${this.id.replace(/[^A-Za-z0-9]/g, "")}-${Math.random().toString(16).slice(2, 6)}`,
          reconnectMs: Number.isFinite(reconnect) && reconnect > 0 ? reconnect * 1000 : 5000,
        });
      } catch (err) {
        this.configError = messageOf(err);
        this.error(`Home Assistant MQTT: ${this.configError}`);
        return;
      }
      let warned = false;
      let publishFailed = false;
      this.link.on("status", (s: HaLink["status"]) => {
        // One line per change of state, not one per reconnection attempt.
        if (s.state === "connected" && s.error) {
          this.warn(`Home Assistant broker ${def.broker}: ${s.error}`);
          publishFailed = true;
        } else if (s.state === "connected") {
          this.log(publishFailed ? `publishing to ${def.broker} works again` : `connected to ${def.broker}`);
          warned = false;
          publishFailed = false;
        } else if (s.state === "unreachable" && !warned) {
          this.warn(`Home Assistant broker ${def.broker} unreachable (${s.error ?? "no answer"}); retrying, backups go on`);
          warned = true;
        }
      });
      this.on("close", (_removed: boolean, done: () => void) => {
        this.link!.close().then(() => done(), () => done());
      });
    },
    { credentials: { username: { type: "text" }, password: { type: "password" } } },
  );

  // The editor's "Test": one connection with the dialog's settings, ended at once (no reconnection).
  editorEndpoint(RED, "ha-mqtt", "test", async (body) => {
    const broker = String(body.broker ?? "").trim();
    const login = dialogCredentials(RED, body, ["username", "password"]);
    await testBroker({ broker, ...login, ca: String(body.ca ?? "").trim() || undefined, timeoutMs: 10_000 });
    return { broker, username: login.username };
  });
};
