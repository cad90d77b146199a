/**
 * What Home Assistant accepts in an MQTT discovery config for the components we publish, written
 * down from its documentation (MQTT discovery, MQTT sensor and binary sensor, sensor device classes
 * and their units / state classes as in homeassistant/components/sensor/const.py). A config that
 * breaks a rule gives a list of complaints; an empty list means HA would take it as meant.
 */

/** sensor device class → the units HA allows for it (undefined: no unit at all) */
const SENSOR_UNITS: Record<string, string[] | undefined> = {
  timestamp: undefined,
  date: undefined,
  enum: undefined,
  data_size: ["bit", "kbit", "Mbit", "Gbit", "B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB"],
  data_rate: ["bit/s", "kbit/s", "Mbit/s", "Gbit/s", "B/s", "kB/s", "MB/s", "GB/s", "KiB/s", "MiB/s", "GiB/s"],
  duration: ["d", "h", "min", "s", "ms", "µs"],
};

/** sensor device class → the state classes HA allows for it */
const SENSOR_STATE_CLASSES: Record<string, string[]> = {
  timestamp: [],
  date: [],
  enum: [],
  data_size: ["measurement", "total", "total_increasing"],
  data_rate: ["measurement"],
  duration: ["measurement", "total", "total_increasing"],
};

const BINARY_SENSOR_CLASSES = [
  "battery", "battery_charging", "carbon_monoxide", "cold", "connectivity", "door", "garage_door", "gas", "heat", "light", "lock",
  "moisture", "motion", "moving", "occupancy", "opening", "plug", "power", "presence", "problem", "running", "safety", "smoke",
  "sound", "tamper", "update", "vibration", "window",
];

/** the options MQTT discovery keeps (HA drops any other key without a word, so one here would be a silent mistake) */
const COMMON_KEYS = [
  "availability", "availability_mode", "availability_template", "availability_topic", "default_entity_id", "device", "device_class",
  "enabled_by_default", "encoding", "entity_category", "entity_picture", "expire_after", "force_update", "icon", "json_attributes_template",
  "json_attributes_topic", "name", "origin", "payload_available", "payload_not_available", "qos", "state_topic", "unique_id", "value_template",
];
const KEYS: Record<string, string[]> = {
  sensor: [...COMMON_KEYS, "last_reset_value_template", "options", "state_class", "suggested_display_precision", "unit_of_measurement"],
  binary_sensor: [...COMMON_KEYS, "off_delay", "payload_off", "payload_on"],
};

const STATE_CLASSES = ["measurement", "measurement_angle", "total", "total_increasing"];
const ENTITY_CATEGORIES = ["config", "diagnostic"];
/** keys HA no longer wants (object_id gave way to default_entity_id) */
const DEPRECATED = ["object_id"];

export function checkDiscovery(topic: string, payload: string, discoveryPrefix = "homeassistant"): string[] {
  const bad: string[] = [];
  const m = new RegExp(`^${discoveryPrefix}/(sensor|binary_sensor)/([a-zA-Z0-9_-]+)/([a-zA-Z0-9_-]+)/config$`).exec(topic);
  if (!m) return [`topic ${topic} is not <prefix>/<component>/<node_id>/<object_id>/config`];
  const component = m[1];
  let c: Record<string, unknown>;
  try {
    c = JSON.parse(payload);
  } catch {
    return [`payload is not JSON`];
  }
  const str = (k: string) => typeof c[k] === "string" && (c[k] as string).length > 0;
  for (const k of ["name", "unique_id", "state_topic", "default_entity_id"]) if (!str(k)) bad.push(`${k} missing`);
  // Our own rule: only timestamps may outlive Node-RED (HA compares them with its clock); the rest follow the last will.
  if (c.device_class !== "timestamp" && !str("availability_topic")) bad.push("availability_topic missing");
  for (const k of DEPRECATED) if (k in c) bad.push(`deprecated ${k}`);
  for (const k of Object.keys(c)) if (!KEYS[component].includes(k) && !DEPRECATED.includes(k)) bad.push(`${k} is not a ${component} option (HA would drop it)`);
  if (str("default_entity_id") && !new RegExp(`^${component}\\.[a-z0-9_]+$`).test(c.default_entity_id as string)) {
    bad.push(`default_entity_id ${c.default_entity_id} is not ${component}.<lower-case id>`);
  }
  const device = c.device as Record<string, unknown> | undefined;
  if (!device || !Array.isArray(device.identifiers) || device.identifiers.length === 0 || typeof device.name !== "string") bad.push("device needs identifiers and a name");
  const origin = c.origin as Record<string, unknown> | undefined;
  if (!origin || typeof origin.name !== "string") bad.push("origin.name missing");
  for (const t of ["state_topic", "availability_topic", "json_attributes_topic"]) {
    if (t in c && (typeof c[t] !== "string" || /[#+]/.test(c[t] as string))) bad.push(`${t} is not a plain topic`);
  }
  if ("expire_after" in c && !(Number.isInteger(c.expire_after) && (c.expire_after as number) > 0)) bad.push("expire_after must be a positive whole number of seconds");
  if ("entity_category" in c && !ENTITY_CATEGORIES.includes(c.entity_category as string)) bad.push(`entity_category ${c.entity_category}`);
  const dc = c.device_class as string | undefined;
  const unit = c.unit_of_measurement as string | undefined;
  const sc = c.state_class as string | undefined;
  if (component === "binary_sensor") {
    if (dc !== undefined && !BINARY_SENSOR_CLASSES.includes(dc)) bad.push(`binary_sensor device_class ${dc}`);
    if (unit !== undefined || sc !== undefined) bad.push("a binary_sensor has no unit or state_class");
    if (dc === "problem" && !str("json_attributes_topic")) bad.push("the problem sensor carries its reasons in json_attributes_topic");
    return bad;
  }
  if (sc !== undefined && !STATE_CLASSES.includes(sc)) bad.push(`state_class ${sc}`);
  if (dc !== undefined) {
    if (!(dc in SENSOR_UNITS)) {
      bad.push(`sensor device_class ${dc} is not one this check knows`);
    } else {
      const units = SENSOR_UNITS[dc];
      if (units === undefined && unit !== undefined) bad.push(`device_class ${dc} takes no unit (got ${unit})`);
      if (units !== undefined && (unit === undefined || !units.includes(unit))) bad.push(`device_class ${dc} needs one of ${units.join(", ")} (got ${unit})`);
      if (sc !== undefined && !SENSOR_STATE_CLASSES[dc].includes(sc)) bad.push(`device_class ${dc} does not take state_class ${sc}`);
    }
  }
  return bad;
}
