/**
 * The health snapshot: built from reports in the report contract's shape (pull, verify, disk,
 * offsite, drill) and from a real archive's catalog; saved in .tick-backup/health.json and read
 * back after a restart. And the discovery payloads, checked against Home Assistant's rules.
 */
import assert from "node:assert/strict";
import * as fs from "node:fs";
import * as path from "node:path";
import { Archive } from "../lib/archive/archive";
import type { FileRecord } from "../lib/archive/catalog";
import { applyOutcome, catalogFigures, emptySnapshot, problemsOf, type HealthOutcome, type HealthSnapshot } from "../lib/health/snapshot";
import { HealthTracker, HEALTH_FILE } from "../lib/health/tracker";
import { discoveryMessages, ENTITIES, idOf, removalMessages, stateMessages, stateOf } from "../lib/health/discovery";
import { checkDiscovery } from "./support/ha-schema";
import { tempDir } from "./support/tree";

const T0 = "2026-11-26T10:00:00.000Z";
const at = (h: number) => new Date(Date.parse(T0) + h * 3600_000).toISOString();

function pullOutcome(finishedAt: string, files = 3, bytes = 3_000_000, problems: Array<{ code: string; message: string }> = []): HealthOutcome {
  return {
    kind: "pull",
    source: "pull-1",
    ok: problems.length === 0,
    at: finishedAt,
    report: {
      kind: "pull", archive: "ticks", startedAt: finishedAt, finishedAt, durationMs: 4200, problems,
      files: Array.from({ length: files }, (_, i) => ({ path: `EURUSD/${i}.csv`, kind: "new", size: 1, bytes: 1, sha256: "x", state: "final" })),
      bytes, rewritten: [],
    } as HealthOutcome["report"],
  };
}

function verifyOutcome(finishedAt: string, mismatches: string[] = [], mode = "scrub"): HealthOutcome {
  return {
    kind: mode === "drill" ? "drill" : "verify", source: "verify-1", ok: mismatches.length === 0, at: finishedAt,
    report: {
      kind: "verify", archive: "ticks", startedAt: finishedAt, finishedAt, durationMs: 100, mode,
      counts: { checked: 10, ok: 10 - mismatches.length, mismatched: mismatches.length, missing: 0, extra: 0, skipped: 0 },
      bytes: 1000, mbPerSec: 100, coverage: { files: 10, totalFiles: 10, percent: 100 },
      origin: { checked: 0, matched: 0, mismatched: 0, unavailable: true }, mismatches, missing: [], extra: [],
      problems: mismatches.map((p) => ({ code: "MISMATCH", message: `${p} does not match`, path: p })),
    } as HealthOutcome["report"],
  };
}

function diskOutcome(finishedAt: string, level: "ok" | "warn" | "critical", usedPercent: number): HealthOutcome {
  return {
    kind: "disk", source: "disk-1", ok: level === "ok", at: finishedAt,
    report: {
      kind: "disk", archive: "ticks", startedAt: finishedAt, finishedAt, durationMs: 5, level,
      archiveDisk: { path: "/media/backup", mounted: true, free: 50 * 2 ** 30, total: 500 * 2 ** 30, used: 450 * 2 ** 30, usedPercent, fsType: "ext4" },
      extra: [], volume: { bytesPerDay7: 120e6, bytesPerDay30: 100e6, filesPerDay7: 40, daysUntilFull7: 447.4, daysUntilFull30: 536 },
      problems: level === "ok" ? [] : [{ code: `DISK_${level.toUpperCase()}`, message: `disk ${usedPercent}% used` }],
    } as HealthOutcome["report"],
  };
}

function offsiteOutcome(finishedAt: string, failed: number, state: "online" | "offline" = "online"): HealthOutcome {
  return {
    kind: "offsite", source: "up-1", ok: failed === 0 && state === "online", at: finishedAt,
    report: {
      kind: "offsite", archive: "ticks", startedAt: finishedAt, finishedAt, durationMs: 5,
      target: { name: "b2", kind: "s3", state, lastConnectedAt: finishedAt, lastCompleteAt: failed ? undefined : finishedAt },
      counts: { uploaded: 5, pending: 7, failed, skipped: 0 }, bytes: 5000,
      problems: failed ? [{ code: "UPLOAD_FAILED", message: "upload failed" }] : [],
    } as HealthOutcome["report"],
  };
}

/** One verified offsite copy, as offsite-upload records it (only its presence counts here). */
const SHA = "0".repeat(64);
const COPY = { at: "2026-11-26T00:00:00.000Z", sha256: SHA, key: "k", size: 1 };

function record(p: string, extra: Partial<FileRecord> & { copies?: Record<string, unknown> } = {}): FileRecord {
  return { path: p, size: 1000, mtime: 1, sha256: SHA, state: "final", firstPulledAt: T0, pulledAt: T0, ...extra } as FileRecord;
}

describe("health snapshot", function () {
  it("takes the last successful time of each kind from the reports, and failures do not move it", function () {
    let s = emptySnapshot("ticks", new Date(T0));
    s = applyOutcome(s, pullOutcome(at(1)));
    s = applyOutcome(s, pullOutcome(at(2), 0, 0, [{ code: "TRANSFER_FAILED", message: "EURUSD/x.csv: connection lost" }]));
    s = applyOutcome(s, verifyOutcome(at(3)));
    s = applyOutcome(s, verifyOutcome(at(4), [], "drill"));
    s = applyOutcome(s, offsiteOutcome(at(5), 0));
    s = applyOutcome(s, offsiteOutcome(at(6), 2));
    assert.deepEqual(s.lastSuccess, { pull: at(1), verify: at(3), drill: at(4), offsite: at(5) });
    assert.deepEqual(s.pull, { at: at(2), files: 0, bytes: 0, durationMs: 4200, rewritten: 0 });
    assert.equal(s.offsite?.b2.pending, 7);
  });

  it("names every problem with a reason, and a later success clears a failed run", function () {
    let s = emptySnapshot("ticks", new Date(T0));
    s = applyOutcome(s, { kind: "pull", source: "pull-1", ok: false, at: at(1), error: { code: "HOST_KEY_CHANGED", message: "offered SHA256:x, pinned SHA256:y" } });
    s = applyOutcome(s, diskOutcome(at(1), "critical", 97));
    s = applyOutcome(s, verifyOutcome(at(1), ["EURUSD/2026-11-20.csv"]));
    s = applyOutcome(s, offsiteOutcome(at(1), 0, "offline"));
    s = { ...s, catalog: catalogFigures([record("a.csv", { versions: [{ size: 1, mtime: 1, sha256: "1", pulledAt: T0, keptAt: at(1), storedAs: "x", reason: "rewritten" }] })], new Date(at(1))) };
    const codes = problemsOf(s, { now: new Date(at(1)) }).map((p) => p.code).sort();
    assert.deepEqual(codes, ["DISK_CRITICAL", "FILES_REWRITTEN", "HOST_KEY_CHANGED", "OFFSITE_FAILED", "VERIFY_MISMATCH"]);
    const verify = problemsOf(s, { now: new Date(at(1)) }).find((p) => p.code === "VERIFY_MISMATCH")!;
    assert.match(verify.message, /EURUSD\/2026-11-20\.csv/);

    s = applyOutcome(s, pullOutcome(at(2)));
    s = applyOutcome(s, diskOutcome(at(2), "ok", 40));
    s = applyOutcome(s, verifyOutcome(at(2)));
    s = applyOutcome(s, offsiteOutcome(at(2), 0));
    s = { ...s, catalog: catalogFigures([record("a.csv")], new Date(at(2))) };
    assert.deepEqual(problemsOf(s, { now: new Date(at(2)) }), []);
  });

  it("a failed run without a report is a reason of its kind; a disk warning is DISK_LOW", function () {
    let s = emptySnapshot("ticks", new Date(T0));
    s = applyOutcome(s, { kind: "verify", source: "v", ok: false, at: at(1), error: { code: "ARCHIVE_MISSING", message: "archive folder /x does not exist" } });
    s = applyOutcome(s, diskOutcome(at(1), "warn", 91));
    const reasons = problemsOf(s, { now: new Date(at(1)) });
    assert.deepEqual(reasons.map((r) => r.code), ["VERIFY_FAILED", "DISK_LOW"]);
    assert.match(reasons[0].message, /archive folder \/x does not exist/);
    assert.match(reasons[1].message, /91% used, 50\.0 GiB free/);
  });

  it("no successful pull for longer than expected is PULL_STALE, measured from the last success (or the start)", function () {
    let s = emptySnapshot("ticks", new Date(T0));
    assert.deepEqual(problemsOf(s, { now: new Date(at(2.9)), staleHours: 3 }), []);
    assert.deepEqual(problemsOf(s, { now: new Date(at(3.1)), staleHours: 3 }).map((p) => p.code), ["PULL_STALE"]);
    s = applyOutcome(s, pullOutcome(at(3)));
    assert.deepEqual(problemsOf(s, { now: new Date(at(5)), staleHours: 3 }), []);
    const stale = problemsOf(s, { now: new Date(at(7)), staleHours: 3 });
    assert.equal(stale[0].code, "PULL_STALE");
    assert.match(stale[0].message, new RegExp(`last successful pull was at ${at(3)} \\(4\\.0 h ago`));
    assert.deepEqual(problemsOf(s, { now: new Date(at(70)), staleHours: 0 }), [], "0 turns the check off");
  });

  it("counts files by copies (archive + one per offsite target), live and final, bytes, and recent rewrites only", function () {
    const old = { size: 1, mtime: 1, sha256: "1", pulledAt: T0, keptAt: at(-24 * 8), storedAs: "x", reason: "rewritten" as const };
    const figures = catalogFigures([
      record("a", { state: "live" }),
      record("b", { copies: { b2: COPY } }),
      record("c", { copies: { b2: COPY, usb: COPY } }),
      record("d", { copies: { b2: COPY, usb: COPY, drive: COPY } }),
      record("e", { versions: [old] }),
      // rewritten since its copy went to usb: that copy holds other bytes, so two copies, not three
      record("f", { copies: { b2: COPY, usb: { ...COPY, sha256: "1".repeat(64) } } }),
    ], new Date(T0));
    assert.deepEqual(figures.copies, { one: 2, two: 2, threePlus: 2 });
    assert.equal(figures.files, 6);
    assert.equal(figures.bytes, 6000);
    assert.deepEqual([figures.live, figures.final], [1, 5]);
    assert.equal(figures.rewrittenRecently, 0, "a rewrite kept eight days ago is no longer a problem");
  });

  it("a drill's findings are the offsite copies' problem (DRILL_FAILED), kept apart from the verify's; the next good drill clears them", function () {
    let s = applyOutcome(emptySnapshot("ticks", new Date(T0)), verifyOutcome(at(1)));
    s = applyOutcome(s, verifyOutcome(at(2), ["EURUSD/2026-11-24.csv"], "drill"));
    let reasons = problemsOf(s, { now: new Date(at(2)) });
    assert.deepEqual(reasons.map((r) => r.code), ["DRILL_FAILED"]);
    assert.match(reasons[0].message, /1 offsite copies that do not restore to the archived bytes .*EURUSD\/2026-11-24\.csv/);
    assert.deepEqual(s.verify?.mismatched, 0, "the scrub's clean result stands");
    assert.equal(s.lastSuccess.verify, at(1));
    // A drill that could not run at all (the target offline) is a drill failure of that node; what the last one found stands.
    s = applyOutcome(s, { kind: "drill", source: "verify-1", ok: false, at: at(3), error: { code: "OFFSITE_FAILED", message: "the target is offline" } });
    reasons = problemsOf(s, { now: new Date(at(3)) });
    assert.deepEqual(reasons.map((r) => [r.code, r.source]), [["DRILL_FAILED", "verify-1"], ["DRILL_FAILED", undefined]]);
    assert.match(reasons[0].message, /last drill at .*: the target is offline/);
    s = applyOutcome(s, verifyOutcome(at(4), [], "drill"));
    assert.deepEqual(problemsOf(s, { now: new Date(at(4)) }), []);
    assert.equal(s.lastSuccess.drill, at(4));
  });

  it("the catalog's verify verdicts and offsite copies speak when no report of that kind has been seen", function () {
    let s = emptySnapshot("ticks", new Date(T0));
    s = { ...s, catalog: catalogFigures([record("a", { verifyResult: "mismatch", copies: { b2: COPY } } as Partial<FileRecord>), record("b"), record("c", { verifyResult: "ok" } as Partial<FileRecord>)], new Date(T0)) };
    const reasons = problemsOf(s, { now: new Date(T0) });
    assert.deepEqual(reasons.map((r) => r.code), ["VERIFY_MISMATCH"]);
    assert.match(reasons[0].message, /1 file\(s\) failed their last verify: a/);
    assert.equal(stateOf(s, reasons).offsite_pending, 2, "files with no offsite copy, once there is an offsite target");
    const noTarget = { ...s, catalog: catalogFigures([record("a"), record("b")], new Date(T0)) };
    assert.equal(stateOf(noTarget, []).offsite_pending, null, "unknown without any offsite target");
  });

  it("ignores fields of the wrong type instead of failing (a report from a newer or older node)", function () {
    const s = applyOutcome(emptySnapshot("ticks"), { kind: "disk", source: "d", ok: true, at: T0, report: { kind: "disk", finishedAt: T0, problems: [], archiveDisk: "nonsense", volume: null } as HealthOutcome["report"] });
    assert.equal(s.disk?.free, undefined);
    const state = stateOf(s, []);
    assert.equal(state.disk_free, null);
    assert.equal(state.days_until_full, null);
  });
});

describe("health tracker: saved in the archive, survives a restart", function () {
  it("writes .tick-backup/health.json atomically and a new tracker (a restarted Node-RED) reads it back", async function () {
    const root = tempDir("tick-health-");
    const archive = await Archive.open(root, { name: "ticks" });
    await archive.update((cat) => cat.commit(record("EURUSD/a.csv", { copies: { b2: COPY } }), record("EURUSD/b.csv", { state: "live" })));
    const changes: Array<{ snapshot: HealthSnapshot; codes: string[] }> = [];
    const first = new HealthTracker({ name: "ticks", open: async () => archive, staleHours: 3, onChange: (snapshot, p) => changes.push({ snapshot, codes: p.map((x) => x.code) }) });
    await first.load();
    await first.record(pullOutcome(new Date().toISOString()));
    await first.record(diskOutcome(new Date().toISOString(), "warn", 92));
    const file = path.join(archive.stateDir, HEALTH_FILE);
    const saved = JSON.parse(fs.readFileSync(file, "utf8")) as HealthSnapshot;
    assert.equal(saved.disk?.level, "warn");
    assert.deepEqual(saved.catalog?.copies, { one: 1, two: 1, threePlus: 0 });
    assert.deepEqual(fs.readdirSync(archive.stateDir).filter((f) => f.includes(".tmp-")), [], "no temporary file left behind");
    assert.deepEqual(changes[changes.length - 1].codes, ["DISK_LOW"]);

    const second = new HealthTracker({ name: "ticks", open: () => Archive.open(root) });
    await second.load();
    assert.deepEqual(second.current.snapshot.lastSuccess, saved.lastSuccess);
    assert.equal(second.current.snapshot.pull?.files, 3);
    assert.deepEqual(second.current.problems.map((p) => p.code), ["DISK_LOW"]);
  });

  it("with the disk missing it keeps the picture in memory and never throws", async function () {
    const root = path.join(tempDir("tick-health-"), "not-mounted");
    const errors: string[] = [];
    const tracker = new HealthTracker({ name: "ticks", open: () => Archive.open(root), onError: (m) => errors.push(m) });
    await tracker.load();
    await tracker.record({ kind: "pull", source: "p", ok: false, at: T0, error: { code: "ARCHIVE_MISSING", message: "archive folder missing" } });
    assert.deepEqual(tracker.current.problems.map((p) => p.code), ["PULL_FAILED"]);
    assert.equal(fs.existsSync(root), false, "the missing folder is not created");
  });

  it("a disk plugged in after the start: the saved snapshot is read first, then the new outcome goes on top", async function () {
    const root = tempDir("tick-health-");
    const archive = await Archive.open(root, { name: "ticks" });
    const before = new HealthTracker({ name: "ticks", open: async () => archive });
    await before.record(pullOutcome(at(1)));
    let mounted = false;
    const after = new HealthTracker({ name: "ticks", open: async () => (mounted ? archive : Promise.reject(new Error("not mounted"))) });
    await after.load();
    assert.equal(after.current.snapshot.lastSuccess.pull, undefined, "nothing known while the disk is away");
    mounted = true;
    await after.record(verifyOutcome(at(2)));
    assert.deepEqual(after.current.snapshot.lastSuccess, { pull: at(1), verify: at(2) });
    const saved = JSON.parse(fs.readFileSync(path.join(archive.stateDir, HEALTH_FILE), "utf8")) as HealthSnapshot;
    assert.deepEqual(saved.lastSuccess, { pull: at(1), verify: at(2) });
  });

  it("a saved snapshot of another shape is reported and replaced, and no later outcome is lost", async function () {
    const root = tempDir("tick-health-");
    const archive = await Archive.open(root, { name: "ticks" });
    fs.writeFileSync(path.join(archive.stateDir, HEALTH_FILE), JSON.stringify({ format: 1, archive: "ticks" })); // no runs, no lastSuccess
    const errors: string[] = [];
    const tracker = new HealthTracker({ name: "ticks", open: async () => archive, staleHours: 3, onError: (m) => errors.push(m) });
    await tracker.load();
    assert.match(errors.join("\n"), /health snapshot unreadable, starting afresh: not a health snapshot/);
    await tracker.record(pullOutcome(at(1)));
    assert.deepEqual(tracker.current.snapshot.lastSuccess, { pull: at(1) });
    assert.deepEqual((JSON.parse(fs.readFileSync(path.join(archive.stateDir, HEALTH_FILE), "utf8")) as HealthSnapshot).lastSuccess, { pull: at(1) });
  });

  it("a listener that throws is reported and stops nothing: the next outcome is still recorded and saved", async function () {
    const root = tempDir("tick-health-");
    const archive = await Archive.open(root, { name: "ticks" });
    const errors: string[] = [];
    let calls = 0;
    const tracker = new HealthTracker({ name: "ticks", open: async () => archive, onError: (m) => errors.push(m), onChange: () => { if (calls++ === 0) throw new Error("listener broke"); } });
    await tracker.record(pullOutcome(at(1)));
    await tracker.record(verifyOutcome(at(2)));
    assert.deepEqual(errors, ["listener broke"]);
    assert.deepEqual((JSON.parse(fs.readFileSync(path.join(archive.stateDir, HEALTH_FILE), "utf8")) as HealthSnapshot).lastSuccess, { pull: at(1), verify: at(2) });
  });

  it("an outcome with the heartbeat queued right behind it is saved", async function () {
    const root = tempDir("tick-health-");
    const archive = await Archive.open(root, { name: "ticks" });
    const tracker = new HealthTracker({ name: "ticks", open: async () => archive, sourceExists: () => true });
    await Promise.all([tracker.record(pullOutcome(at(1))), tracker.refresh()]);
    assert.deepEqual((JSON.parse(fs.readFileSync(path.join(archive.stateDir, HEALTH_FILE), "utf8")) as HealthSnapshot).lastSuccess, { pull: at(1) });
  });

  it("refresh re-evaluates with the clock: the heartbeat turns a stale pull into a problem without a new run", async function () {
    const root = tempDir("tick-health-");
    const archive = await Archive.open(root, { name: "ticks" });
    let now = new Date(at(1));
    const seen: string[][] = [];
    const tracker = new HealthTracker({ name: "ticks", open: async () => archive, staleHours: 3, now: () => now, onChange: (_s, p) => seen.push(p.map((x) => x.code)) });
    await tracker.record(pullOutcome(at(1)));
    assert.deepEqual(seen[seen.length - 1], []);
    now = new Date(at(4.5));
    await tracker.refresh();
    assert.deepEqual(seen[seen.length - 1], ["PULL_STALE"]);
  });

  it("forgets the failed run of a node deleted from the flow at the next refresh, and saves that", async function () {
    const root = tempDir("tick-health-");
    const archive = await Archive.open(root, { name: "ticks" });
    const live = new Set(["pull-1", "verify-gone"]);
    const tracker = new HealthTracker({ name: "ticks", open: async () => archive, sourceExists: (id) => live.has(id) });
    await tracker.record({ kind: "verify", source: "verify-gone", ok: false, at: T0, error: { code: "ERROR", message: "boom" } });
    await tracker.record(pullOutcome(at(1)));
    assert.deepEqual(tracker.current.problems.map((p) => p.code), ["VERIFY_FAILED"]);
    live.delete("verify-gone");
    await tracker.refresh();
    assert.deepEqual(tracker.current.problems, []);
    const saved = JSON.parse(fs.readFileSync(path.join(archive.stateDir, HEALTH_FILE), "utf8")) as HealthSnapshot;
    assert.deepEqual(Object.keys(saved.runs), ["pull-1"]);
  });

  it("a burst of outcomes reads the catalog once, after the last, and loses none of them", async function () {
    const root = tempDir("tick-health-");
    const archive = await Archive.open(root, { name: "ticks" });
    let reads = 0;
    const counting = Object.create(archive, { readCatalog: { value: () => (reads++, archive.readCatalog()) } }) as Archive;
    const tracker = new HealthTracker({ name: "ticks", open: async () => counting });
    await Promise.all([tracker.record(pullOutcome(at(1))), tracker.record(verifyOutcome(at(2))), tracker.record(diskOutcome(at(3), "ok", 10)), tracker.record(offsiteOutcome(at(4), 0))]);
    assert.equal(reads, 1);
    assert.deepEqual(tracker.current.snapshot.lastSuccess, { pull: at(1), verify: at(2), disk: at(3), offsite: at(4) });
    const saved = JSON.parse(fs.readFileSync(path.join(archive.stateDir, HEALTH_FILE), "utf8")) as HealthSnapshot;
    assert.deepEqual(saved.lastSuccess, tracker.current.snapshot.lastSuccess);
  });

  it("a snapshot that cannot be saved is reported; the picture goes on in memory and the catalog is untouched", async function () {
    const root = tempDir("tick-health-");
    const archive = await Archive.open(root, { name: "ticks" });
    await archive.update((cat) => cat.commit(record("EURUSD/a.csv")));
    fs.mkdirSync(path.join(archive.stateDir, HEALTH_FILE)); // a directory where the file belongs: the rename fails
    const errors: string[] = [];
    const changes: string[] = [];
    const tracker = new HealthTracker({ name: "ticks", open: async () => archive, onError: (m) => errors.push(m), onChange: (s) => changes.push(s.lastSuccess.pull ?? "") });
    await tracker.record(pullOutcome(at(1)));
    assert.match(errors.join("\n"), /rename .*health\.json/, "the failed save is reported");
    assert.equal(tracker.current.snapshot.lastSuccess.pull, at(1));
    assert.deepEqual(changes, [at(1)], "the state still goes out");
    assert.deepEqual(fs.readdirSync(archive.stateDir).filter((f) => f.includes(".tmp-")), [], "no temporary file left behind");
    assert.deepEqual((await archive.readCatalog()).all().map((r) => r.path), ["EURUSD/a.csv"]);
  });

  it("a damaged health.json is reported and replaced, not fatal", async function () {
    const root = tempDir("tick-health-");
    const archive = await Archive.open(root, { name: "ticks" });
    fs.writeFileSync(path.join(archive.stateDir, HEALTH_FILE), "{ not json");
    const errors: string[] = [];
    const tracker = new HealthTracker({ name: "ticks", open: async () => archive, onError: (m) => errors.push(m) });
    await tracker.load();
    assert.match(errors.join("\n"), /health snapshot unreadable/);
    await tracker.record(pullOutcome(T0));
    assert.equal((JSON.parse(fs.readFileSync(path.join(archive.stateDir, HEALTH_FILE), "utf8")) as HealthSnapshot).lastSuccess.pull, T0);
  });
});

describe("Home Assistant discovery payloads", function () {
  const options = { discoveryPrefix: "homeassistant", baseTopic: "tick-backup" };

  it("every config passes the rules from HA's docs (units, classes, ids, origin, availability)", function () {
    const messages = discoveryMessages("ticks-main", options);
    assert.equal(messages.length, ENTITIES.length);
    for (const m of messages) assert.deepEqual(checkDiscovery(m.topic, m.payload), [], m.topic);
  });

  it("the check itself fails a wrong unit/device_class pair, a timestamp with a unit, object_id, or a problem sensor without reasons", function () {
    const [, ts] = discoveryMessages("ticks", options);
    const base = JSON.parse(ts.payload);
    const bad = (patch: Record<string, unknown>, topic = ts.topic) => checkDiscovery(topic, JSON.stringify({ ...base, ...patch }));
    assert.match(bad({ device_class: "data_size", unit_of_measurement: "d", state_class: "measurement" }).join(), /data_size needs one of/);
    assert.match(bad({ device_class: "duration", unit_of_measurement: "GiB" }).join(), /duration needs one of/);
    assert.match(bad({ unit_of_measurement: "s" }).join(), /timestamp takes no unit/);
    assert.match(bad({ state_class: "measurement" }).join(), /timestamp does not take state_class/);
    assert.match(bad({ object_id: "x" }).join(), /deprecated object_id/);
    assert.match(bad({ default_entity_id: "tick_backup_ticks_last_pull" }).join(), /default_entity_id/);
    assert.match(bad({ origin: undefined }).join(), /origin/);
    assert.match(bad({ has_entity_name: true }).join(), /has_entity_name is not a sensor option/);
    const problem = JSON.parse(discoveryMessages("ticks", options)[0].payload);
    assert.match(checkDiscovery(discoveryMessages("ticks", options)[0].topic, JSON.stringify({ ...problem, json_attributes_topic: undefined })).join(), /json_attributes_topic/);
  });

  it("exact topics and ids come from the archive's name, the same on every build (stable across redeploys)", function () {
    const messages = discoveryMessages("ticks-main", options);
    assert.equal(idOf("ticks-main"), "tick_backup_ticks_main");
    assert.equal(messages[0].topic, "homeassistant/binary_sensor/tick_backup_ticks_main/problem/config");
    const problem = JSON.parse(messages[0].payload);
    assert.equal(problem.unique_id, "tick_backup_ticks_main_problem");
    assert.equal(problem.default_entity_id, "binary_sensor.tick_backup_ticks_main_problem");
    assert.equal(problem.device_class, "problem");
    assert.equal(problem.state_topic, "tick-backup/ticks-main/state");
    assert.equal(problem.json_attributes_topic, "tick-backup/ticks-main/problem");
    assert.equal(problem.availability_topic, "tick-backup/availability");
    assert.deepEqual(problem.device.identifiers, ["tick_backup_ticks_main"]);
    assert.equal(problem.origin.name, "node-red-contrib-tick-backup");
    assert.match(problem.origin.sw_version, /^\d+\.\d+\.\d+/);
    const lastPull = JSON.parse(messages.find((m) => m.topic.endsWith("/last_pull/config"))!.payload);
    assert.equal(lastPull.device_class, "timestamp");
    assert.equal(lastPull.expire_after, undefined, "timestamps stay visible when updates stop: HA compares them with now");
    assert.equal(lastPull.availability_topic, undefined, "and when Node-RED is gone");
    assert.ok(problem.expire_after > 0, "the problem entity goes unavailable when states stop");
    assert.deepEqual(discoveryMessages("ticks-main", options), messages);
    assert.deepEqual(new Set(messages.map((m) => JSON.parse(m.payload).unique_id)).size, messages.length, "unique_id is unique");
  });

  it("every entity has a field in the state, in the entity's unit; removal empties every config and state", function () {
    let s = emptySnapshot("ticks", new Date(T0));
    s = applyOutcome(s, pullOutcome(at(1), 3, 2_500_000));
    s = applyOutcome(s, diskOutcome(at(1), "ok", 90));
    s = { ...s, catalog: catalogFigures([record("a", { size: 2 ** 30 })], new Date(at(1))) };
    const state = stateOf(s, []);
    for (const e of ENTITIES) assert.ok(e.key in state, `state has ${e.key}`);
    assert.equal(state.last_pull, at(1));
    assert.equal(state.last_pull_size, 2.5, "MB");
    assert.equal(state.disk_free, 50, "GiB");
    assert.equal(state.archive_size, 1, "GiB");
    assert.equal(state.data_per_day, 120, "MB per day");
    assert.equal(state.days_until_full, 536, "the 30-day rate, as the disk-space node shows it");
    assert.equal(state.problem, false);
    const [st, attrs] = stateMessages("ticks", s, [{ code: "PULL_STALE", message: "old" }], options);
    assert.equal(st.topic, "tick-backup/ticks/state");
    assert.equal(JSON.parse(st.payload).problem, true);
    assert.deepEqual(JSON.parse(attrs.payload), { summary: "old", reasons: [{ code: "PULL_STALE", message: "old" }], codes: ["PULL_STALE"] });
    const removal = removalMessages("ticks", options);
    assert.equal(removal.length, ENTITIES.length + 2);
    assert.ok(removal.every((m) => m.payload === ""));
  });
});

describe("examples/ha agree with what is published", function () {
  const root = path.resolve(__dirname, "..", "..");
  const published = new Set(discoveryMessages("ticks", { discoveryPrefix: "homeassistant", baseTopic: "tick-backup" }).map((m) => JSON.parse(m.payload).default_entity_id as string));

  it("every entity the dashboard card names exists (archive `ticks`), and the card shows the problem, the ages, the disk and data per day", function () {
    const card = fs.readFileSync(path.join(root, "examples/ha/dashboard-card.yaml"), "utf8");
    const named = [...card.matchAll(/\b(binary_sensor|sensor)\.tick_backup_ticks_[a-z0-9_]+/g)].map((m) => m[0]);
    assert.ok(named.length >= 10, `the card names entities: ${named.join(", ")}`);
    for (const id of named) assert.ok(published.has(id), `${id} is published`);
    for (const must of ["binary_sensor.tick_backup_ticks_problem", "sensor.tick_backup_ticks_last_pull", "sensor.tick_backup_ticks_disk_used", "sensor.tick_backup_ticks_data_per_day"]) {
      assert.ok(named.includes(must), `the card shows ${must}`);
    }
    assert.match(card, /format: relative/, "ages as 'x hours ago'");
    assert.match(card, /type: gauge/);
  });

  it("the blueprint asks for entities of the classes we publish, and pushes on problem, stale pull and unavailability", function () {
    const bp = fs.readFileSync(path.join(root, "examples/ha/tick-backup-alerts.yaml"), "utf8");
    assert.match(bp, /domain: binary_sensor\s+device_class: problem/);
    assert.match(bp, /domain: sensor\s+device_class: timestamp/);
    for (const id of ["problem", "recovered", "stale", "unavailable"]) assert.match(bp, new RegExp(`id: ${id}\\b`));
    assert.match(bp, /to: "unavailable"\s+for:/, "the dead-man's switch waits the chosen minutes");
  });

  it("the example flow's archive publishes through an ha-mqtt node pointing at the HA add-on's broker, with no secret in it", function () {
    const flow = JSON.parse(fs.readFileSync(path.join(root, "examples/tick-backup.json"), "utf8")) as Array<Record<string, unknown>>;
    const ha = flow.find((n) => n.type === "ha-mqtt")!;
    const archive = flow.find((n) => n.type === "backup-archive")!;
    assert.equal(archive.ha, ha.id);
    assert.equal(ha.broker, "mqtt://core-mosquitto:1883");
    assert.equal(ha.username, undefined);
    assert.equal(ha.password, undefined);
  });
});
