/**
 * The alert engine: the incident policy under fake time (sinon fakes the clock only), the channels
 * against real receivers on 127.0.0.1 (an SMTP server, an HTTP server standing in for ntfy, a
 * webhook, healthchecks.io and Home Assistant's REST API), failing channels, and secrets.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import * as sinon from "sinon";
import { Archive } from "../lib/archive/archive";
import { adviceFor, Alerter, alertSetup, deliver, emailChannel, healthChecks, homeAssistantAccess, homeAssistantChannel, IncidentBook, emptyIncidentState, meaningOf, noticeOf, ntfyChannel, redact, webhookChannel, type DeliveredEvent, type IncidentEvent } from "../lib/alert";
import { applyOutcome, emptySnapshot, type HealthOutcome, type HealthSnapshot } from "../lib/health/snapshot";
import { freePort } from "./support/net";
import { startHttpSink, startSmtpSink, type HttpSink } from "./support/sinks";
import { tempDir } from "./support/tree";

const T0 = Date.parse("2026-11-26T10:00:00.000Z");
const MIN = 60_000;
const HOUR = 3600_000;

function pullFailed(at: string, message = "connect ECONNREFUSED 10.0.0.5:22", code = "CONNECT_FAILED"): HealthOutcome {
  return { kind: "pull", source: "pull-1", ok: false, at, error: { code, message } };
}

function pullOk(at: string): HealthOutcome {
  return { kind: "pull", source: "pull-1", ok: true, at, report: { kind: "pull", finishedAt: at, problems: [] } };
}

describe("alert: incident policy", function () {
  const policy = { remindHours: 6, settleMinutes: 5 };
  const check = { key: "node:pull-1", code: "PULL_FAILED", message: "last pull failed", origin: "health" as const };

  it("opens once, stays quiet on repeats, reminds, and resolves after the check has stayed good", function () {
    const book = new IncidentBook(emptyIncidentState(), policy);
    let now = T0;
    const t = () => new Date(now);
    assert.deepEqual(book.fail(check, t()).map((e) => e.event), ["opened"]);
    now += 10 * MIN;
    assert.deepEqual(book.fail({ ...check, message: "failed again" }, t()), [], "a repeat sends nothing");
    assert.equal(book.get(check.key)?.message, "failed again", "but the incident carries the newest text");
    now = T0 + 6 * HOUR - 1;
    assert.deepEqual(book.tick(t()), [], "no reminder before remindHours");
    now = T0 + 6 * HOUR;
    const reminder = book.tick(t());
    assert.deepEqual(reminder.map((e) => [e.event, e.reminders]), [["reminder", 1]]);
    assert.deepEqual(book.tick(t()), [], "one reminder per period");
    now += 1 * HOUR;
    assert.deepEqual(book.succeed(check.key, t()), [], "good once is not yet resolved");
    now += 4 * MIN;
    assert.deepEqual(book.tick(t()), []);
    now += 1 * MIN;
    const resolved = book.tick(t());
    assert.deepEqual(resolved.map((e) => e.event), ["resolved"]);
    assert.equal(resolved[0].resolvedAt, new Date(T0 + 7 * HOUR).toISOString(), "resolved as of the first good check");
    assert.equal(book.open.length, 0);
  });

  it("a check that flaps sends one notice, and one recovery when it settles", function () {
    const book = new IncidentBook(emptyIncidentState(), policy);
    const events: IncidentEvent[] = [];
    let now = T0;
    for (let i = 0; i < 10; i++) {
      events.push(...book.fail(check, new Date(now)));
      now += MIN;
      events.push(...book.succeed(check.key, new Date(now)), ...book.tick(new Date(now)));
      now += MIN;
    }
    assert.deepEqual(events.map((e) => e.event), ["opened"]);
    assert.equal(book.get(check.key)?.flaps, 9);
    now += 5 * MIN;
    const done = book.tick(new Date(now));
    assert.deepEqual(done.map((e) => [e.event, e.flaps]), [["resolved", 9]]);
  });

  it("a low disk that becomes critical is told once more (escalated); a level that flaps sends no storm", function () {
    const book = new IncidentBook(emptyIncidentState(), policy);
    const disk = (code: string) => ({ key: "health:DISK", code, message: code, origin: "health" as const });
    const kinds: string[] = [];
    let now = T0;
    for (const code of ["DISK_LOW", "DISK_LOW", "DISK_CRITICAL", "DISK_LOW", "DISK_CRITICAL", "DISK_CRITICAL"]) {
      kinds.push(...book.fail(disk(code), new Date((now += MIN))).map((e) => `${e.event}:${e.code}`));
    }
    assert.deepEqual(kinds, ["opened:DISK_LOW", "escalated:DISK_CRITICAL"]);
    const n = noticeOf({ ...book.get("health:DISK")!, event: "escalated", at: new Date(now).toISOString() }, { archive: "ticks" });
    assert.equal(n.title, "WORSE: disk critical (ticks)");
    assert.equal(n.priority, "high");
    // An incident that opened severe does not escalate.
    const other = new IncidentBook(emptyIncidentState(), policy);
    other.fail({ ...check, cause: "HOST_KEY_CHANGED" }, new Date(T0));
    assert.deepEqual(other.fail({ ...check, cause: "HOST_KEY_CHANGED" }, new Date(T0 + MIN)), []);
    // A connection failure that turns into a changed host key is news.
    const pull = new IncidentBook(emptyIncidentState(), policy);
    pull.fail({ ...check, cause: "CONNECT_FAILED" }, new Date(T0));
    assert.deepEqual(pull.fail({ ...check, cause: "HOST_KEY_CHANGED" }, new Date(T0 + MIN)).map((e) => e.event), ["escalated"]);
    // So is one that turns into another archive's disk mounted at the archive path, with its advice.
    const swapped = new IncidentBook(emptyIncidentState(), policy);
    swapped.fail({ ...check, cause: "CONNECT_FAILED" }, new Date(T0));
    const worse = swapped.fail({ ...check, cause: "ARCHIVE_REPLACED" }, new Date(T0 + MIN));
    assert.deepEqual(worse.map((e) => e.event), ["escalated"]);
    assert.match(noticeOf(worse[0], { archive: "ticks" }).text, /What to do: The archive folder holds another archive .*Mount this archive's disk again/);
  });

  it("remindHours 0 never reminds", function () {
    const book = new IncidentBook(emptyIncidentState(), { remindHours: 0, settleMinutes: 5 });
    book.fail(check, new Date(T0));
    assert.deepEqual(book.tick(new Date(T0 + 1000 * HOUR)), []);
  });
});

describe("alert: checks from health and from messages", function () {
  it("a failed run and its catch message are one check; staleness is one too", function () {
    let s = emptySnapshot("ticks", new Date(T0));
    s = applyOutcome(s, pullFailed(new Date(T0).toISOString()));
    const checks = healthChecks(s, { now: new Date(T0 + 4 * HOUR), staleHours: 3, names: (id) => (id === "pull-1" ? "pull ticks" : undefined) });
    assert.deepEqual(checks.map((c) => [c.key, c.code]), [["node:pull-1", "PULL_FAILED"], ["health:PULL_STALE", "PULL_STALE"]]);
    assert.equal(checks[0].cause, "CONNECT_FAILED");
    assert.equal(checks[0].sourceName, "pull ticks");
    const caught = meaningOf({ error: { message: "connect ECONNREFUSED", source: { id: "pull-1", type: "sftp-pull", name: "" } } });
    assert.equal(caught.kind, "fail");
    assert.equal(caught.kind === "fail" && caught.check.key, "node:pull-1");
    assert.equal(caught.kind === "fail" && caught.check.sourceName, "sftp-pull");
  });

  it("the disk's warn and critical levels from disk-space reports are one check, health:DISK", function () {
    const disk = (level: string, usedPercent: number): HealthOutcome => ({
      kind: "disk", source: "disk-1", ok: level === "ok", at: new Date(T0).toISOString(),
      report: { kind: "disk", finishedAt: new Date(T0).toISOString(), level, archiveDisk: { path: "/media/backup", mounted: true, free: 2 ** 30, total: 100 * 2 ** 30, usedPercent }, volume: {}, problems: level === "ok" ? [] : [{ code: `DISK_${level.toUpperCase()}`, message: "x" }] } as HealthOutcome["report"],
    });
    const at = { now: new Date(T0), staleHours: 0 };
    let s = applyOutcome(emptySnapshot("ticks", new Date(T0)), disk("warn", 90));
    assert.deepEqual(healthChecks(s, at).map((c) => [c.key, c.code]), [["health:DISK", "DISK_LOW"]]);
    s = applyOutcome(s, disk("critical", 99));
    assert.deepEqual(healthChecks(s, at).map((c) => [c.key, c.code]), [["health:DISK", "DISK_CRITICAL"]]);
    s = applyOutcome(s, disk("ok", 50));
    assert.deepEqual(healthChecks(s, at), []);
  });

  it("reads msg.topic with msg.ok, msg.ping, and says why anything else is ignored", function () {
    assert.deepEqual(meaningOf({ topic: "nas", ok: true }), { kind: "ok", name: "nas" });
    const f = meaningOf({ topic: "nas", ok: false, payload: "NAS share gone" });
    assert.equal(f.kind === "fail" && f.check.message, "NAS share gone");
    assert.deepEqual(meaningOf({ ping: "start" }), { kind: "ping", ping: "start" });
    assert.equal(meaningOf({ payload: 1 }).kind, "ignored");
  });

  it("a failed drill gets its own advice (the offsite copy is in question, not the archive)", function () {
    assert.match(adviceFor("DRILL_FAILED"), /sample restored from the offsite copy .* the archive itself is not touched.* tick-backup drill/);
    assert.doesNotMatch(adviceFor("DRILL_FAILED"), /Restore the named files from the offsite copy/);
    assert.match(adviceFor("VERIFY_MISMATCH"), /Restore the named files from the offsite copy/);
    assert.match(adviceFor("SOMETHING_FAILED"), /next run tries again/);
  });

  it("a person can act on the text: what, where, since when, what to do", function () {
    const e: IncidentEvent = { event: "opened", key: "node:pull-1", code: "PULL_FAILED", cause: "HOST_KEY_CHANGED", message: "last pull at … : host key changed", source: "pull-1", sourceName: "pull ticks", openedAt: new Date(T0).toISOString(), at: new Date(T0).toISOString(), reminders: 0, flaps: 0 };
    const n = noticeOf(e, { archive: "ticks", archivePath: "/media/backup/ticks" });
    assert.match(n.title, /^PROBLEM: host key changed \(ticks\)$/);
    assert.match(n.text, /Since: 2026-11-26T10:00:00.000Z/);
    assert.match(n.text, /confirm the new fingerprint in the sftp-server node/);
    assert.match(n.text, /Archive: ticks \(\/media\/backup\/ticks\) · node: pull ticks/);
    assert.equal(n.priority, "high");
  });

  it("redacts credentials in URLs, bearer tokens and the node's own secrets", function () {
    const text = redact("POST https://bob:hunter22@hooks.example/x failed; Authorization: Bearer abc.def-123; topic s3cr3t-topic", ["s3cr3t-topic"]);
    assert.equal(text, "POST https://***@hooks.example/x failed; Authorization: Bearer ***; topic ***");
  });
});

describe("alert: channels against real receivers on 127.0.0.1", function () {
  this.timeout(30_000);
  let http: HttpSink;
  beforeEach(async () => (http = await startHttpSink()));
  afterEach(async () => http.stop());

  const event: IncidentEvent = { event: "opened", key: "health:DISK", code: "DISK_CRITICAL", message: "archive disk 97% used, 3.0 GiB free", openedAt: new Date(T0).toISOString(), at: new Date(T0).toISOString(), reminders: 0, flaps: 0 };
  const notice = noticeOf(event, { archive: "ticks" });

  it("e-mail: the SMTP server receives the subject and body, logged in with the credentials", async function () {
    const smtp = await startSmtpSink({ user: "backup", password: "mail-pass-123" });
    try {
      const ch = emailChannel({ host: "127.0.0.1", port: smtp.port, security: "none", user: "backup", password: "mail-pass-123", from: "pi@home.example", to: "me@home.example" });
      const [d] = await deliver(notice, [ch]);
      assert.deepEqual(d, { channel: "email", ok: true });
      assert.equal(smtp.mails.length, 1);
      const mail = smtp.mails[0];
      assert.deepEqual(mail.to, ["me@home.example"]);
      assert.equal(mail.from, "pi@home.example");
      assert.equal(mail.user, "backup");
      assert.match(mail.raw, /^Subject: PROBLEM: disk critical \(ticks\)$/m);
      assert.match(mail.raw, /archive disk 97% used/);
      assert.match(mail.raw, /What to do: The archive disk is almost full/);
      assert.ok(!mail.raw.includes("mail-pass-123"), "the password is not in the mail");
    } finally {
      await smtp.stop();
    }
  });

  it("ntfy, webhook and Home Assistant get the right paths, headers and bodies", async function () {
    const channels = [
      ntfyChannel({ server: http.url, topic: "tb-topic-x9", token: "tk_ntfy_secret" }),
      webhookChannel({ url: `${http.url}/hook/abcdef123456` }),
      homeAssistantChannel({ url: http.url, token: "ha-long-lived-token", service: "notify.mobile_app_pixel_7" }),
    ];
    const results = await deliver(notice, channels);
    assert.deepEqual(results.map((r) => r.ok), [true, true, true]);
    const byPath = new Map(http.requests.map((r) => [r.path, r]));

    const ntfy = byPath.get("/")!;
    assert.equal(ntfy.method, "POST");
    assert.equal(ntfy.headers.authorization, "Bearer tk_ntfy_secret");
    assert.deepEqual(ntfy.json, { topic: "tb-topic-x9", title: notice.title, message: notice.text, priority: 5, tags: ["warning"] });

    const hook = byPath.get("/hook/abcdef123456")!;
    assert.equal(hook.headers["content-type"], "application/json");
    assert.equal(hook.headers.authorization, undefined);
    const body = hook.json as Record<string, unknown>;
    assert.equal(body.event, "opened");
    assert.equal(body.code, "DISK_CRITICAL");
    assert.equal(body.title, notice.title);

    const ha = byPath.get("/api/services/notify/mobile_app_pixel_7")!;
    assert.equal(ha.headers.authorization, "Bearer ha-long-lived-token");
    assert.deepEqual(ha.json, { title: notice.title, message: notice.text, data: { tag: "tick-backup-health_DISK", group: "tick-backup" } });

    // Another notify platform (Telegram, e-mail through HA …) gets title and message only.
    await deliver(notice, [homeAssistantChannel({ url: http.url, token: "ha-long-lived-token", service: "telegram_me" })]);
    assert.deepEqual(http.requests.find((r) => r.path === "/api/services/notify/telegram_me")!.json, { title: notice.title, message: notice.text });
  });

  it("in the Home Assistant add-on, SUPERVISOR_TOKEN and http://supervisor/core are used when URL and token are empty", function () {
    assert.deepEqual(homeAssistantAccess(undefined, undefined, { SUPERVISOR_TOKEN: "sup-token" }), { url: "http://supervisor/core", token: "sup-token" });
    assert.deepEqual(homeAssistantAccess("http://ha:8123", "t", { SUPERVISOR_TOKEN: "sup-token" }), { url: "http://ha:8123", token: "t" });
    assert.equal(homeAssistantAccess(undefined, undefined, {}), undefined);
    assert.equal(homeAssistantAccess("http://ha:8123", undefined, { SUPERVISOR_TOKEN: "x" }), undefined, "half a configuration is not silently replaced");
    const setup = alertSetup({ haService: "mobile_app_x" }, {}, { SUPERVISOR_TOKEN: "sup-token-123" });
    assert.deepEqual(setup.channels.map((c) => c.name), ["home-assistant"]);
    assert.ok(setup.secrets.includes("sup-token-123"));
  });

  it("a refusing SMTP server, an HTTP 500 and a name that does not resolve fail alone; the others deliver", async function () {
    const smtp = await startSmtpSink({ user: "backup", password: "pw-1234", refuse: true });
    const deadPort = await freePort();
    try {
      http.statusFor.set("/hook/failing-secret-path", 500);
      const channels = [
        emailChannel({ host: "127.0.0.1", port: smtp.port, security: "none", user: "backup", password: "pw-1234", from: "pi@home.example", to: "me@home.example" }),
        webhookChannel({ url: `${http.url}/hook/failing-secret-path` }),
        ntfyChannel({ server: "http://ntfy.invalid", topic: "t", token: undefined }),
        homeAssistantChannel({ url: `http://127.0.0.1:${deadPort}`, token: "ha-secret-token", service: "mobile_app_x" }),
        ntfyChannel({ server: http.url, topic: "works" }),
      ];
      const results = await deliver(notice, channels);
      assert.deepEqual(results.map((r) => [r.channel, r.ok]), [["email", false], ["webhook", false], ["ntfy", false], ["home-assistant", false], ["ntfy", true]]);
      assert.match(results[0].error!, /^email: 127\.0\.0\.1:\d+ \(550\)/);
      assert.match(results[1].error!, /^webhook: 127\.0\.0\.1:\d+ answered HTTP 500/);
      assert.match(results[2].error!, /^ntfy: cannot reach ntfy\.invalid \((ENOTFOUND|EAI_[A-Z]+): the name does not resolve\)/);
      assert.match(results[3].error!, /^home-assistant: cannot reach 127\.0\.0\.1:\d+ \(ECONNREFUSED\)/);
      const all = JSON.stringify(results);
      for (const secret of ["failing-secret-path", "ha-secret-token", "pw-1234"]) assert.ok(!all.includes(secret), `${secret} not in the errors`);
      assert.equal(http.requests.filter((r) => (r.json as { topic?: string })?.topic === "works").length, 1, "the working channel delivered");
    } finally {
      await smtp.stop();
    }
  });

  it("a wrong SMTP password is a visible failure without the password", async function () {
    const smtp = await startSmtpSink({ user: "backup", password: "right-pass" });
    try {
      const [d] = await deliver(notice, [emailChannel({ host: "127.0.0.1", port: smtp.port, security: "none", user: "backup", password: "wrong-pass-9", from: "a@b.example", to: "c@d.example" })]);
      assert.equal(d.ok, false);
      assert.match(d.error!, /^email: 127\.0\.0\.1:\d+ \(535\)/);
      assert.ok(!d.error!.includes("wrong-pass-9"));
      assert.equal(smtp.mails.length, 0);
    } finally {
      await smtp.stop();
    }
  });

  it("STARTTLS is required by default: a server without it gets no password in the clear", async function () {
    const smtp = await startSmtpSink({ user: "backup", password: "never-in-clear-1" }); // offers no STARTTLS
    try {
      const [d] = await deliver(notice, [emailChannel({ host: "127.0.0.1", port: smtp.port, security: "starttls", user: "backup", password: "never-in-clear-1", from: "a@b.example", to: "c@d.example" })]);
      assert.equal(d.ok, false);
      assert.match(d.error!, /^email: 127\.0\.0\.1:\d+ /);
      assert.match(d.error!, /STARTTLS/);
      assert.deepEqual(smtp.logins, [], "no login was tried without TLS");
      const [tls] = await deliver(notice, [emailChannel({ host: "127.0.0.1", port: smtp.port, security: "tls", user: "backup", password: "never-in-clear-1", from: "a@b.example", to: "c@d.example" })]);
      assert.match(tls.error!, /the server does not speak TLS on this port/);
      assert.deepEqual(smtp.logins, []);
      assert.equal(smtp.mails.length, 0);
    } finally {
      await smtp.stop();
    }
  });

  it("half-filled channels are clear configuration errors", function () {
    assert.throws(() => alertSetup({ emailHost: "smtp.example" }, {}), /e-mail needs a server, a From and a To/);
    assert.throws(() => alertSetup({ emailHost: "smtp.example", emailFrom: "a@b", emailTo: "c@d", emailPort: "70000" }, {}), /not a port number/);
    assert.throws(() => alertSetup({ haService: "mobile_app_x" }, {}, {}), /needs its URL and a long-lived access token/);
    assert.throws(() => alertSetup({}, { webhookUrl: "ftp://x" }), /must start with http/);
    assert.throws(() => alertSetup({ haService: "mobile app", haUrl: "http://ha" }, { haToken: "t" }), /not a service name/);
    assert.deepEqual(alertSetup({}, {}).channels, []);
  });
});

describe("alert: the alerter over time, with a restart in the middle", function () {
  this.timeout(30_000);
  let http: HttpSink;
  let clock: sinon.SinonFakeTimers;
  let root: string;
  beforeEach(async () => {
    http = await startHttpSink();
    root = tempDir("tick-alert-");
    await Archive.open(root, { name: "ticks" });
    // Only the clock is fake: sockets and timers of the real receivers keep working.
    clock = sinon.useFakeTimers({ now: T0, toFake: ["Date"] });
  });
  afterEach(async () => {
    clock.restore();
    await http.stop();
  });

  function alerter(events: DeliveredEvent[], errors: string[] = [], extra: Partial<ConstructorParameters<typeof Alerter>[0]> = {}) {
    return new Alerter({
      archive: "ticks",
      stateFile: "alert-a1.json",
      open: () => Archive.open(root),
      channels: [webhookChannel({ url: `${http.url}/hook/secret-hook-path` })],
      pingUrl: `${http.url}/ping/uuid-1234-5678`,
      remindHours: 6,
      settleMinutes: 5,
      staleHours: 3,
      secrets: ["secret-hook-path", "uuid-1234-5678"],
      onEvent: (e) => events.push(e),
      onError: (m) => errors.push(m),
      ...extra,
    });
  }

  const iso = () => new Date().toISOString();
  const hooks = () => http.requests.filter((r) => r.path.startsWith("/hook/")).map((r) => (r.json as { event: string; code: string }).event);

  it("one notice, no duplicates, a reminder, the recovery, and a restart that neither forgets nor re-sends", async function () {
    const events: DeliveredEvent[] = [];
    let a = alerter(events);
    let s: HealthSnapshot = emptySnapshot("ticks", new Date());
    s = applyOutcome(s, pullOk(iso()));
    assert.deepEqual(await a.health(s), []);

    clock.tick(1 * HOUR);
    s = applyOutcome(s, pullFailed(iso()));
    await a.health(s);
    await a.input({ error: { message: "connect ECONNREFUSED 10.0.0.5:22", source: { id: "pull-1", type: "sftp-pull" } } }); // the catch node's copy
    clock.tick(1 * HOUR);
    s = applyOutcome(s, pullFailed(iso()));
    await a.health(s);
    assert.deepEqual(hooks(), ["opened"], "one notice for a failure seen three times");
    assert.equal(a.open, 1);
    assert.ok(a.lastPushAt);

    // Node-RED restarts: the incident comes back from the archive and is not announced again.
    await a.settled();
    const saved = fs.readFileSync(path.join(root, ".tick-backup", "alert-a1.json"), "utf8");
    assert.ok(!saved.includes("secret-hook-path"));
    a = alerter(events);
    clock.tick(1 * HOUR);
    s = applyOutcome(s, pullFailed(iso()));
    await a.health(s);
    assert.deepEqual(hooks(), ["opened"], "no second notice after the restart");
    assert.equal(a.open, 1);

    clock.tick(4 * HOUR - 1); // just short of 6 h after opening
    await a.tick();
    assert.deepEqual(hooks(), ["opened"]);
    clock.tick(1);
    await a.tick();
    assert.deepEqual(hooks(), ["opened", "reminder"]);

    s = applyOutcome(s, pullOk(iso()));
    await a.health(s);
    clock.tick(6 * MIN);
    await a.tick();
    assert.deepEqual(hooks(), ["opened", "reminder", "resolved"]);
    assert.equal(a.open, 0);
    const resolved = events.at(-1)!;
    assert.equal(resolved.event, "resolved");
    assert.match(resolved.text, /^Recovered: pull failed\./);
    assert.deepEqual(resolved.deliveries, [{ channel: "webhook", ok: true }]);

    // And after another restart the resolved incident stays resolved.
    a = alerter(events);
    await a.health(s);
    await a.tick();
    assert.deepEqual(hooks(), ["opened", "reminder", "resolved"]);
  });

  it("staleness: no successful pull for longer than staleHours opens an incident; a pull resolves it", async function () {
    const events: DeliveredEvent[] = [];
    const a = alerter(events);
    let s = applyOutcome(emptySnapshot("ticks", new Date()), pullOk(iso()));
    clock.tick(3 * HOUR - MIN);
    await a.health(s);
    assert.equal(a.open, 0);
    clock.tick(2 * MIN);
    await a.health(s); // the heartbeat: nothing ran, the clock moved on
    assert.deepEqual(events.map((e) => [e.event, e.code]), [["opened", "PULL_STALE"]]);
    assert.match(events[0].text, /Check that the inject node that starts sftp-pull is enabled/);
    s = applyOutcome(s, pullOk(iso()));
    await a.health(s);
    clock.tick(5 * MIN);
    await a.tick();
    assert.deepEqual(events.map((e) => e.event), ["opened", "resolved"]);
  });

  it("one notice per problem: the catch message of a node the archive's health judges (a verify mismatch, a critical disk) opens nothing more", async function () {
    const events: DeliveredEvent[] = [];
    const a = alerter(events);
    const mismatch: HealthOutcome = {
      kind: "verify", source: "verify-1", ok: false, at: iso(),
      report: { kind: "verify", finishedAt: iso(), mode: "full", counts: { checked: 3, ok: 2, mismatched: 1, missing: 0 }, mismatches: ["EURUSD/2026-11-24.csv"], missing: [], problems: [{ code: "MISMATCH", message: "EURUSD/2026-11-24.csv does not match" }] } as HealthOutcome["report"],
    };
    await a.health(applyOutcome(emptySnapshot("ticks", new Date()), mismatch));
    await a.input({ error: { message: "verify found 1 mismatched and 0 missing file(s)", code: "VERIFY_FAILED", source: { id: "verify-1", type: "hash-verify", name: "" } } });
    assert.deepEqual(events.map((e) => [e.event, e.key]), [["opened", "health:VERIFY_MISMATCH"]]);
    assert.equal(a.open, 1);
    // A node the health does not know (a node of the user's own) is news by its catch message alone.
    await a.input({ error: { message: "ENOSPC", source: { id: "n9", type: "file", name: "write log" } } });
    assert.deepEqual(events.map((e) => [e.event, e.key]), [["opened", "health:VERIFY_MISMATCH"], ["opened", "node:n9"]]);
  });

  it("a catch error from a node outside the archive resolves with msg.topic and msg.ok; pings go out with no secret in the log", async function () {
    const events: DeliveredEvent[] = [];
    const a = alerter(events);
    await a.input({ error: { message: "POST https://user:pa55word@nas.local failed", source: { id: "n9", type: "http request", name: "NAS check" } } });
    assert.deepEqual(events.map((e) => e.event), ["opened"]);
    assert.ok(!JSON.stringify(events).includes("pa55word"), "credentials in an error's URL are removed");
    await a.input({ topic: "NAS check", ok: true });
    clock.tick(5 * MIN);
    await a.tick();
    assert.deepEqual(events.map((e) => e.event), ["opened", "resolved"]);

    // An error of no node and no topic (a message of one's own) can be ended too.
    await a.input({ error: { message: "the feed looks odd" } });
    await a.input({ topic: "feed", ok: false, payload: "the feed stopped" });
    assert.deepEqual(events.slice(2).map((e) => [e.event, e.key]), [["opened", "topic:error"], ["opened", "topic:feed"]]);
    await a.input({ topic: "error", ok: true });
    clock.tick(5 * MIN);
    await a.tick();
    assert.deepEqual(events.slice(4).map((e) => [e.event, e.key]), [["resolved", "topic:error"]]);
    assert.equal(a.open, 1, "the other check stays open");

    await a.input({ ping: "start" });
    await a.pulled(true, "pull ok");
    await a.pulled(false, "connect refused");
    const pings = http.requests.filter((r) => r.path.startsWith("/ping/")).map((r) => [r.path, r.body]);
    assert.deepEqual(pings, [["/ping/uuid-1234-5678/start", ""], ["/ping/uuid-1234-5678", "pull ok"], ["/ping/uuid-1234-5678/fail", "connect refused"]]);
  });

  it("all channels down: the incident is still kept, the failure is in the event, and the ping failure is named without its URL", async function () {
    const events: DeliveredEvent[] = [];
    const dead = await freePort();
    const a = alerter(events, [], { channels: [webhookChannel({ url: `http://127.0.0.1:${dead}/hook/secret-hook-path` })], pingUrl: `http://127.0.0.1:${dead}/ping/uuid-1234-5678` });
    await a.input({ topic: "x", ok: false });
    await a.pulled(false, "boom");
    assert.equal(a.open, 1);
    assert.equal(events[0].deliveries[0].ok, false);
    assert.equal(a.lastPushAt, undefined);
    assert.deepEqual([...a.failing.keys()].sort(), ["ping", "webhook"]);
    assert.ok(![...a.failing.values()].join().includes("uuid-1234-5678"));
  });

  it("a channel that failed gets the notice again at the next ticks, and the status clears when it takes it", async function () {
    const events: DeliveredEvent[] = [];
    const a = alerter(events);
    http.statusFor.set("/hook/secret-hook-path", 503);
    await a.input({ topic: "x", ok: false });
    assert.equal(events[0].deliveries[0].ok, false);
    assert.ok(a.failing.has("webhook"));
    await a.tick();
    assert.equal(hooks().length, 1, "no retry before a minute has passed");
    clock.tick(60_000);
    await a.tick();
    assert.equal(hooks().length, 2, "retried after a minute");
    assert.ok(a.failing.has("webhook"), "still failing");
    http.statusFor.delete("/hook/secret-hook-path");
    clock.tick(60_000);
    await a.tick();
    assert.equal(hooks().length, 2, "the second retry waits two minutes");
    clock.tick(60_000);
    await a.tick();
    assert.deepEqual(hooks(), ["opened", "opened", "opened"]);
    assert.equal(a.failing.size, 0);
    assert.ok(a.lastPushAt);
    clock.tick(3600_000);
    await a.tick();
    assert.equal(hooks().length, 3, "delivered once: no more retries");
    assert.equal(events.length, 1, "a retry is not a new event");
  });

  it("an archive whose disk is away keeps incidents in memory and saves them when it is back", async function () {
    const events: DeliveredEvent[] = [];
    const errors: string[] = [];
    let away = true;
    const a = alerter(events, errors, { open: () => (away ? Promise.reject(new Error("ARCHIVE_MISSING")) : Archive.open(root)) });
    await a.input({ topic: "x", ok: false });
    assert.equal(events.length, 1, "announced although it cannot be saved");
    assert.ok(!fs.existsSync(path.join(root, ".tick-backup", "alert-a1.json")));
    away = false;
    await a.input({ topic: "y", ok: false });
    const saved = JSON.parse(fs.readFileSync(path.join(root, ".tick-backup", "alert-a1.json"), "utf8"));
    assert.deepEqual(Object.keys(saved.incidents).sort(), ["topic:x", "topic:y"]);
    assert.deepEqual(errors, []);
  });

  it("a damaged incident file is reported and replaced", async function () {
    fs.writeFileSync(path.join(root, ".tick-backup", "alert-a1.json"), "{ not json");
    const errors: string[] = [];
    const a = alerter([], errors);
    await a.input({ topic: "x", ok: false });
    assert.equal(errors.length, 1);
    assert.match(errors[0], /incident file unreadable, starting afresh/);
    assert.equal(JSON.parse(fs.readFileSync(path.join(root, ".tick-backup", "alert-a1.json"), "utf8")).incidents["topic:x"].code, "CHECK_FAILED");
  });
});
