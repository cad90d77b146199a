// Home Assistant MQTT discovery for one archive: one device, one entity per figure of the health
// snapshot, by the book (unique_id, default_entity_id, origin, availability, device/state classes
// with units HA accepts for them). States travel as one retained JSON message per archive.
import * as fs from "node:fs";
import * as path from "node:path";
import type { HealthSnapshot, ProblemReason } from "./snapshot";

export interface HaMessage {
  topic: string;
  payload: string;
}

export interface HaTopicOptions {
  discoveryPrefix: string;
  baseTopic: string;
}

type StateValue = number | string | boolean | null;

interface EntitySpec {
  component: "sensor" | "binary_sensor";
  key: string;
  name: string;
  device_class?: string;
  state_class?: "measurement" | "total" | "total_increasing";
  unit_of_measurement?: string;
  icon?: string;
  entity_category?: "diagnostic";
  suggested_display_precision?: number;
  /** goes unavailable when no state arrives for EXPIRE_AFTER_SECONDS (timestamps never: HA compares them with now) */
  expires?: boolean;
}

export const PACKAGE_NAME = "node-red-contrib-tick-backup";
/** States are sent again this often even when nothing ran, so that expire_after means "Node-RED stopped telling". */
export const HEARTBEAT_SECONDS = 300;
export const EXPIRE_AFTER_SECONDS = 6 * HEARTBEAT_SECONDS;

const files = { unit_of_measurement: "files", state_class: "measurement" as const, expires: true };

export const ENTITIES: EntitySpec[] = [
  { component: "binary_sensor", key: "problem", name: "Problem", device_class: "problem", expires: true },
  { component: "sensor", key: "last_pull", name: "Last successful pull", device_class: "timestamp", icon: "mdi:cloud-download" },
  { component: "sensor", key: "last_verify", name: "Last clean verify", device_class: "timestamp", icon: "mdi:shield-check" },
  { component: "sensor", key: "last_offsite", name: "Last offsite upload", device_class: "timestamp", icon: "mdi:cloud-upload" },
  { component: "sensor", key: "last_drill", name: "Last restore drill", device_class: "timestamp", icon: "mdi:backup-restore" },
  { component: "sensor", key: "last_pull_files", name: "Files in last pull", icon: "mdi:file-download", ...files },
  { component: "sensor", key: "last_pull_size", name: "Data in last pull", device_class: "data_size", unit_of_measurement: "MB", state_class: "measurement", suggested_display_precision: 1, expires: true },
  { component: "sensor", key: "last_pull_duration", name: "Last pull duration", device_class: "duration", unit_of_measurement: "s", state_class: "measurement", entity_category: "diagnostic", expires: true },
  { component: "sensor", key: "archive_files", name: "Files in archive", icon: "mdi:file-multiple", ...files },
  { component: "sensor", key: "archive_size", name: "Archive size", device_class: "data_size", unit_of_measurement: "GiB", state_class: "measurement", suggested_display_precision: 2, expires: true },
  { component: "sensor", key: "live_files", name: "Growing files", icon: "mdi:file-clock", entity_category: "diagnostic", ...files },
  { component: "sensor", key: "copies_1", name: "Files with 1 copy", icon: "mdi:numeric-1-box-multiple", ...files },
  { component: "sensor", key: "copies_2", name: "Files with 2 copies", icon: "mdi:numeric-2-box-multiple", ...files },
  { component: "sensor", key: "copies_3plus", name: "Files with 3+ copies", icon: "mdi:numeric-3-box-multiple", ...files },
  { component: "sensor", key: "offsite_pending", name: "Files waiting for offsite", icon: "mdi:cloud-clock", ...files },
  { component: "sensor", key: "disk_free", name: "Disk free", device_class: "data_size", unit_of_measurement: "GiB", state_class: "measurement", suggested_display_precision: 1, expires: true },
  { component: "sensor", key: "disk_used", name: "Disk used", unit_of_measurement: "%", state_class: "measurement", icon: "mdi:harddisk", suggested_display_precision: 0, expires: true },
  { component: "sensor", key: "days_until_full", name: "Disk full in", device_class: "duration", unit_of_measurement: "d", state_class: "measurement", suggested_display_precision: 0, expires: true },
  { component: "sensor", key: "data_per_day", name: "Data per day", device_class: "data_size", unit_of_measurement: "MB", state_class: "measurement", suggested_display_precision: 1, expires: true },
];

/** The archive name (a slug) in the form HA ids accept: lower-case letters, digits and underscores. */
export function idOf(archiveName: string): string {
  return `tick_backup_${archiveName.toLowerCase().replace(/[^a-z0-9_]+/g, "_")}`;
}

/** Where the connection says online/offline (its last will): one topic for every archive on it. */
export function availabilityTopic(baseTopic: string): string {
  return `${baseTopic}/availability`;
}

export function topicsOf(archiveName: string, options: HaTopicOptions) {
  const base = options.baseTopic;
  return {
    availability: availabilityTopic(base),
    state: `${base}/${archiveName}/state`,
    problem: `${base}/${archiveName}/problem`,
    config: (e: Pick<EntitySpec, "component" | "key">) => `${options.discoveryPrefix}/${e.component}/${idOf(archiveName)}/${e.key}/config`,
  };
}

/** One retained config message per entity. */
export function discoveryMessages(archiveName: string, options: HaTopicOptions): HaMessage[] {
  const id = idOf(archiveName);
  const t = topicsOf(archiveName, options);
  const version = packageVersion();
  const device = { identifiers: [id], name: `Tick backup ${archiveName}`, manufacturer: PACKAGE_NAME, model: "3-2-1 tick data archive", sw_version: version };
  const origin = { name: PACKAGE_NAME, sw_version: version };
  return ENTITIES.map((e) => {
    const config: Record<string, unknown> = {
      name: e.name,
      unique_id: `${id}_${e.key}`,
      default_entity_id: `${e.component}.${id}_${e.key}`,
      device,
      origin,
      state_topic: t.state,
    };
    // Timestamps stay readable when Node-RED is gone ("last pull 9 hours ago" is then the news, and
    // HA compares them with its own clock); everything else goes unavailable with the last will.
    if (e.device_class !== "timestamp") Object.assign(config, { availability_topic: t.availability, payload_available: "online", payload_not_available: "offline" });
    if (e.component === "binary_sensor") {
      Object.assign(config, { value_template: "{{ 'ON' if value_json.problem else 'OFF' }}", payload_on: "ON", payload_off: "OFF", json_attributes_topic: t.problem });
    } else {
      config.value_template = `{{ value_json.${e.key} }}`;
    }
    for (const k of ["device_class", "state_class", "unit_of_measurement", "icon", "entity_category", "suggested_display_precision"] as const) {
      if (e[k] !== undefined) config[k] = e[k];
    }
    if (e.expires) config.expire_after = EXPIRE_AFTER_SECONDS;
    return { topic: t.config(e), payload: JSON.stringify(config) };
  });
}

/** Empty retained messages: HA removes the entities (and the device with its last one), and the broker forgets the states. */
export function removalMessages(archiveName: string, options: HaTopicOptions): HaMessage[] {
  const t = topicsOf(archiveName, options);
  return [...ENTITIES.map((e) => ({ topic: t.config(e), payload: "" })), { topic: t.state, payload: "" }, { topic: t.problem, payload: "" }];
}

/** The retained state and problem-attributes messages of one archive. */
export function stateMessages(archiveName: string, snapshot: HealthSnapshot, problems: ProblemReason[], options: HaTopicOptions): HaMessage[] {
  const t = topicsOf(archiveName, options);
  const summary = problems.map((p) => p.message).join("; ");
  return [
    { topic: t.state, payload: JSON.stringify(stateOf(snapshot, problems)) },
    { topic: t.problem, payload: JSON.stringify({ summary, reasons: problems, codes: problems.map((p) => p.code) }) },
  ];
}

/** The state JSON: one field per entity key, in the entity's unit; null where nothing is known yet. */
export function stateOf(s: HealthSnapshot, problems: ProblemReason[]): Record<string, StateValue> {
  const c = s.catalog;
  // From the upload reports; else, once any file has an offsite copy, the files that have none.
  const reported = Object.values(s.offsite ?? {}).reduce<number | null>((sum, t) => (t.pending === undefined ? sum : (sum ?? 0) + t.pending), null);
  const offsitePending = reported ?? (c && c.copies.two + c.copies.threePlus > 0 ? c.copies.one : null);
  return {
    problem: problems.length > 0,
    problem_count: problems.length,
    last_pull: s.lastSuccess.pull ?? null,
    last_verify: s.lastSuccess.verify ?? null,
    last_offsite: s.lastSuccess.offsite ?? null,
    last_drill: s.lastSuccess.drill ?? null,
    last_pull_files: s.pull?.files ?? null,
    last_pull_size: s.pull ? round(s.pull.bytes / 1e6, 3) : null,
    last_pull_duration: s.pull ? round(s.pull.durationMs / 1000, 1) : null,
    archive_files: c?.files ?? null,
    archive_size: c ? round(c.bytes / 2 ** 30, 4) : null,
    live_files: c?.live ?? null,
    copies_1: c?.copies.one ?? null,
    copies_2: c?.copies.two ?? null,
    copies_3plus: c?.copies.threePlus ?? null,
    offsite_pending: offsitePending,
    disk_free: s.disk?.free !== undefined ? round(s.disk.free / 2 ** 30, 2) : null,
    disk_used: s.disk?.usedPercent !== undefined ? round(s.disk.usedPercent, 1) : null,
    days_until_full: s.disk?.daysUntilFull != null && Number.isFinite(s.disk.daysUntilFull) ? round(s.disk.daysUntilFull, 1) : null,
    data_per_day: s.disk?.bytesPerDay7 != null ? round(s.disk.bytesPerDay7 / 1e6, 2) : null,
    updated_at: s.updatedAt,
  };
}

function round(n: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

let version: string | undefined;
/** This package's version (origin and device sw_version), read once from its package.json. */
export function packageVersion(): string {
  if (version) return version;
  for (let dir = __dirname; dir !== path.dirname(dir); dir = path.dirname(dir)) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, "package.json"), "utf8")) as { name?: string; version?: string };
      if (pkg.name === PACKAGE_NAME) return (version = pkg.version ?? "0.0.0");
    } catch {
      // no package.json here: look further up
    }
  }
  return (version = "0.0.0");
}
