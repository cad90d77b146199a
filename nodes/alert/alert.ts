// Node alert: watches an archive's health (and messages from catch nodes) and tells a person once per
// incident, reminds while it lasts, and notes the recovery: by e-mail, ntfy, webhook and Home Assistant.
import type { NodeAPI, Node, NodeDef, NodeStatus } from "node-red";
import { Alerter, alertSetup, clockTime, DEFAULT_POLICY, deliver, localTime, redact, testNotice, type AlertCredentials, type AlertFields, type AlertSetup } from "../../lib/alert";
import { ConfigError, messageOf } from "../../lib/errors";
import { dialogCredentials, editorEndpoint, numberOr, reportFailure, withHaNote } from "../shared/node-helpers";
import type { BackupArchiveNode } from "../shared/types";

interface AlertDef extends NodeDef, AlertFields {
  archive: string;
  remindHours: number | string;
  staleHours: number | string;
}

const TICK_MS = 60_000;

export = (RED: NodeAPI) => {
  RED.nodes.registerType<Node<AlertCredentials>, AlertDef, object, AlertCredentials>(
    "alert",
    function (this: Node<AlertCredentials>, def: AlertDef) {
      RED.nodes.createNode(this, def);
      const archive = RED.nodes.getNode(def.archive) as BackupArchiveNode | null;
      let setup: AlertSetup;
      try {
        if (!archive) throw new ConfigError("no backup-archive configured");
        setup = alertSetup(def, this.credentials ?? {});
      } catch (err) {
        this.status({ fill: "red", shape: "ring", text: messageOf(err) });
        // Its own error coming back through a catch node is not reported again (no loop).
        this.on("input", (msg, _send, done) => (fromSelf(msg, this.id) ? done() : reportFailure(this, err, done)));
        return;
      }
      const secrets = setup.secrets;
      const alerter = new Alerter({
        archive: archive.archiveName,
        archivePath: archive.archivePath,
        stateFile: `alert-${this.id.replace(/[^A-Za-z0-9_-]/g, "_")}.json`,
        open: () => archive.openExisting(),
        channels: setup.channels,
        pingUrl: setup.pingUrl,
        remindHours: hours(def.remindHours, DEFAULT_POLICY.remindHours),
        settleMinutes: DEFAULT_POLICY.settleMinutes,
        staleHours: hours(def.staleHours, archive.staleHours),
        secrets,
        names: (id) => {
          const n = RED.nodes.getNode(id) as (Node & { name?: string; type: string }) | null;
          return n ? n.name || n.type : undefined;
        },
        time: localTime,
        onEvent: (event) => {
          for (const d of event.deliveries) if (!d.ok) this.warn(`${event.event} "${event.title}" not delivered: ${d.error}`);
          this.send({ topic: `alert/${event.event}`, payload: event });
        },
        onError: (message) => this.warn(redact(message, secrets)),
      });
      const show = () => this.status(withHaNote(statusOf(alerter, setup.channels.length), archive));
      const current = () => archive.health().then((h) => alerter.health(h.snapshot));
      const evaluate = () => current().then(show, show);

      const unsubscribers = [
        archive.onHealth((snapshot) => void alerter.health(snapshot).then(show)),
        archive.onRecord((o) => {
          if (o.kind === "pull") void alerter.pulled(o.ok, o.ok ? "pull ok" : (o.error?.message ?? o.report?.problems[0]?.message ?? "pull failed")).then(show);
        }),
      ];
      void evaluate();
      // Reminders fall due and staleness grows with the clock, not only when something runs.
      const timer = setInterval(() => void alerter.tick().then(evaluate), TICK_MS);

      let warnedIgnored = false;
      this.on("input", (msg, _send, done) => {
        if (fromSelf(msg, this.id)) return done();
        // The health first: a node of this archive that failed has told it already (before its catch
        // message left), and the alerter must know that node as one the health speaks for.
        current()
          .catch(() => undefined)
          .then(() => alerter.input(msg as unknown as Record<string, unknown>))
          .then(({ meaning }) => {
            if (meaning.kind === "ignored" && !warnedIgnored) {
              warnedIgnored = true;
              this.warn(`a message was ignored: ${meaning.why}`);
            }
            show();
            done();
          }, (err) => reportFailure(this, new Error(redact(messageOf(err), secrets)), done));
      });

      this.on("close", (_removed: boolean, done: () => void) => {
        clearInterval(timer);
        for (const off of unsubscribers) off();
        alerter.settled().then(() => done(), () => done());
      });
    },
    {
      credentials: {
        emailUser: { type: "text" },
        emailPassword: { type: "password" },
        ntfyTopic: { type: "password" },
        ntfyToken: { type: "password" },
        webhookUrl: { type: "password" },
        pingUrl: { type: "password" },
        haToken: { type: "password" },
      },
    },
  );

  // The editor's "Send test alert": one clearly marked test notice on each configured channel, each
  // answered on its own. The ping URL is left alone: a test must not tell a dead-man's switch the backup ran.
  editorEndpoint(RED, "alert", "test", async (body) => {
    const setup = alertSetup(body as AlertFields, dialogCredentials(RED, body, CREDENTIALS));
    if (setup.channels.length === 0) throw new ConfigError("no channel is configured: fill in e-mail, ntfy, Home Assistant push or a webhook");
    const from = typeof body.name === "string" && body.name.trim() ? `the alert node "${body.name.trim()}"` : "an alert node";
    const deliveries = await deliver(testNotice(from), setup.channels);
    return { channels: deliveries.map((d) => (d.error === undefined ? d : { ...d, error: redact(d.error, setup.secrets) })) };
  });
};

const CREDENTIALS = ["emailUser", "emailPassword", "ntfyTopic", "ntfyToken", "webhookUrl", "pingUrl", "haToken"] as const;

function fromSelf(msg: object, id: string): boolean {
  return (msg as { error?: { source?: { id?: string } } }).error?.source?.id === id;
}

/** Hours from a setting: empty, not a number or negative means the fallback. */
function hours(value: unknown, fallback: number): number {
  const n = numberOr(value, fallback);
  return n < 0 ? fallback : n;
}

/** `2 open · last push 14:02`; a failing channel in capitals. */
function statusOf(a: Alerter, channels: number): NodeStatus {
  const parts = [a.open === 0 ? "no incidents" : `${a.open} open`];
  if (a.lastPushAt) parts.push(`last push ${clockTime(a.lastPushAt)}`);
  if (channels === 0) parts.push("no channel");
  const failing = [...a.failing.keys()];
  if (failing.length > 0) parts.push(`${failing.join(", ").toUpperCase()} FAILING`);
  const fill = failing.length > 0 ? "yellow" : a.open > 0 ? "red" : "green";
  return { fill, shape: a.open > 0 || failing.length > 0 ? "ring" : "dot", text: parts.join(" · ") };
}
