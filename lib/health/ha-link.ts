// One MQTT connection to the broker Home Assistant listens to. It announces availability with a
// retained last will (so HA marks every archive unavailable when Node-RED dies), keeps the latest
// discovery and state messages of each archive, sends them whenever it (re)connects, and again when
// Home Assistant announces that it has started.
import { EventEmitter } from "node:events";
import * as mqtt from "mqtt";
import { BackupError, ConfigError, messageOf } from "../errors";
import { availabilityTopic, type HaMessage, type HaTopicOptions } from "./discovery";

export interface HaLinkOptions extends HaTopicOptions {
  /** mqtt://, mqtts://, ws:// or wss:// URL */
  broker: string;
  username?: string;
  password?: string;
  /** PEM text of the CA that signed the broker's certificate (mqtts/wss to a private CA) */
  ca?: string;
  clientId?: string;
  /** wait between reconnection attempts (default 5 s) */
  reconnectMs?: number;
  connectTimeoutMs?: number;
  /** the wait before re-publishing after HA's `online`, spread so many clients do not answer at once */
  republishDelayMs?: { min: number; max: number };
  random?: () => number;
}

const PUBLISH_FAILED = "publish failed: ";

export type HaLinkState = "connecting" | "connected" | "unreachable" | "closed";

export interface HaLinkStatus {
  state: HaLinkState;
  since: string;
  /** the last connection error, in words */
  error?: string;
}

const PROTOCOLS = ["mqtt:", "mqtts:", "ws:", "wss:"];

export class HaLink extends EventEmitter {
  readonly availabilityTopic: string;
  private readonly client: mqtt.MqttClient;
  private readonly sources = new Map<string, { configs: HaMessage[]; states: HaMessage[] }>();
  private readonly inFlight = new Set<Promise<unknown>>();
  private republishTimer: ReturnType<typeof setTimeout> | undefined;
  private current: HaLinkStatus = { state: "connecting", since: new Date().toISOString() };

  constructor(private readonly options: HaLinkOptions) {
    super();
    const url = parseBroker(options.broker);
    this.availabilityTopic = availabilityTopic(options.baseTopic);
    checkTopic("base topic", options.baseTopic);
    checkTopic("discovery prefix", options.discoveryPrefix);
    this.client = mqtt.connect(url.href, {
      clientId: options.clientId ?? `tick-backup-${Math.random().toString(16).slice(2, 10)}`,
      username: options.username || undefined,
      password: options.password || undefined,
      ca: options.ca ? [options.ca] : undefined,
      clean: true,
      reconnectPeriod: options.reconnectMs ?? 5000,
      // A refused login is tried again too: Home Assistant's broker refuses logins while HA restarts.
      reconnectOnConnackError: true,
      connectTimeout: options.connectTimeoutMs ?? 10_000,
      queueQoSZero: false,
      will: { topic: this.availabilityTopic, payload: Buffer.from("offline"), qos: 1, retain: true },
    });
    this.client.on("connect", () => this.onConnect());
    this.client.on("message", (topic, payload) => this.onMessage(topic, payload.toString("utf8")));
    this.client.on("error", (err) => this.setStatus(this.current.state === "connected" ? "connected" : "unreachable", describeError(err)));
    this.client.on("close", () => {
      if (this.current.state !== "closed") this.setStatus("unreachable", this.current.error ?? "connection closed");
    });
  }

  get status(): HaLinkStatus {
    return { ...this.current };
  }

  get connected(): boolean {
    return this.client.connected;
  }

  /**
   * Sets an archive's messages. Configs are sent when they change (and on every connect); states are
   * sent every time. While the broker is away nothing queues: the latest of everything goes out on connect.
   */
  put(key: string, messages: { configs?: HaMessage[]; states?: HaMessage[] }): void {
    const entry = this.sources.get(key) ?? { configs: [], states: [] };
    this.sources.set(key, entry);
    if (messages.configs) {
      const changed = JSON.stringify(messages.configs) !== JSON.stringify(entry.configs);
      entry.configs = messages.configs;
      if (changed) this.send(messages.configs);
    }
    if (messages.states) {
      entry.states = messages.states;
      this.send(messages.states);
    }
  }

  /** Stops re-publishing an archive (a redeploy: its entities stay in HA). */
  forget(key: string): void {
    this.sources.delete(key);
  }

  /** Stops re-publishing an archive and sends its removal messages (the node was deleted from the flow). */
  async remove(key: string, removal: HaMessage[]): Promise<void> {
    this.sources.delete(key);
    await this.send(removal);
  }

  /** Says `offline` (retained) and closes: a clean stop is not a crash, but the device is unavailable all the same. */
  async close(): Promise<void> {
    clearTimeout(this.republishTimer);
    const wasConnected = this.client.connected;
    await withTimeout(Promise.all([...this.inFlight]), 3000);
    this.setStatus("closed");
    if (wasConnected) await withTimeout(this.client.publishAsync(this.availabilityTopic, "offline", { qos: 1, retain: true }), 3000).catch(() => undefined);
    await withTimeout(this.client.endAsync(!wasConnected), 3000).catch(() => this.client.end(true));
  }

  private onConnect(): void {
    this.setStatus("connected");
    this.client.subscribe(`${this.options.discoveryPrefix}/status`, { qos: 1 }, () => undefined);
    this.send([{ topic: this.availabilityTopic, payload: "online" }]);
    this.republish();
  }

  private onMessage(topic: string, payload: string): void {
    if (topic !== `${this.options.discoveryPrefix}/status` || payload !== "online" || this.republishTimer) return;
    // Home Assistant (re)started and forgot the non-retained world: tell it everything again, after a
    // short random wait so that every device on the broker does not answer in the same instant.
    const { min, max } = this.options.republishDelayMs ?? { min: 1000, max: 5000 };
    const wait = min + (this.options.random ?? Math.random)() * (max - min);
    this.republishTimer = setTimeout(() => {
      this.republishTimer = undefined;
      this.republish();
    }, wait);
    this.republishTimer.unref();
  }

  private republish(): void {
    for (const entry of this.sources.values()) this.send(entry.configs);
    for (const entry of this.sources.values()) this.send(entry.states);
  }

  private send(messages: HaMessage[]): Promise<void> {
    if (!this.client.connected || messages.length === 0) return Promise.resolve();
    const sending = Promise.all(messages.map((m) => this.client.publishAsync(m.topic, m.payload, { qos: 1, retain: true })))
      .then(() => {
        // Publishing works again: a failure said before is over (the next one is said again). The
        // states go out at every change, the configs only once: send them again, in case one was lost.
        if (this.current.state !== "connected" || !this.current.error?.startsWith(PUBLISH_FAILED)) return;
        this.setStatus("connected");
        for (const entry of this.sources.values()) void this.send(entry.configs);
      })
      .catch((err) => this.setStatus(this.client.connected ? "connected" : "unreachable", `${PUBLISH_FAILED}${messageOf(err)}`));
    this.inFlight.add(sending);
    void sending.finally(() => this.inFlight.delete(sending));
    return sending;
  }

  private setStatus(state: HaLinkState, error?: string): void {
    const changed = state !== this.current.state || error !== this.current.error;
    if (!changed) return;
    this.current = { state, since: state === this.current.state ? this.current.since : new Date().toISOString(), error };
    this.emit("status", this.status);
  }
}

/**
 * The editor's "Test": one connection attempt with these settings (no reconnection), ended at once.
 * Resolves when the broker accepts the login; rejects with its reason (refused, not authorized, no
 * answer within the time limit). A bad URL is a ConfigError.
 */
export async function testBroker(o: { broker: string; username?: string; password?: string; ca?: string; timeoutMs?: number }): Promise<void> {
  const url = parseBroker(o.broker);
  const timeoutMs = o.timeoutMs ?? 10_000;
  const client = mqtt.connect(url.href, {
    clientId: `tick-backup-test-${Math.random().toString(16).slice(2, 10)}`,
    username: o.username || undefined,
    password: o.password || undefined,
    ca: o.ca ? [o.ca] : undefined,
    clean: true,
    reconnectPeriod: 0,
    connectTimeout: timeoutMs + 1000, // our own limit below answers first, in words
  });
  client.on("error", () => undefined); // an error after the answer must not crash Node-RED
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const fail = (text: string) => reject(new BackupError("MQTT_TEST_FAILED", `${url.host}: ${text}`, { retryable: true }));
      timer = setTimeout(() => fail(`no answer within ${Math.round(timeoutMs / 1000)} s`), timeoutMs);
      client.once("connect", () => resolve());
      client.once("error", (err: Error & { code?: string | number }) => {
        // CONNACK 4/5 (MQTT 3.1.1), 134/135 (MQTT 5): the login itself was refused.
        const login = [4, 5, 134, 135].includes(Number(err.code));
        fail(login ? `not authorized: check the username and password (the broker said "${messageOf(err)}")` : describeError(err));
      });
      client.once("close", () => fail("the connection closed before the broker answered"));
    });
  } finally {
    clearTimeout(timer);
    await client.endAsync(true).catch(() => undefined);
  }
}

function parseBroker(broker: string): URL {
  let url: URL;
  try {
    url = new URL(broker.trim());
  } catch {
    throw new ConfigError(`broker ${JSON.stringify(broker)} is not a URL (e.g. mqtt://core-mosquitto:1883)`);
  }
  if (!PROTOCOLS.includes(url.protocol)) throw new ConfigError(`broker URL must start with mqtt://, mqtts://, ws:// or wss://, got ${url.protocol}//`);
  if (url.username || url.password) throw new ConfigError("put the broker's username and password in the credential fields, not in the URL");
  return url;
}

function checkTopic(what: string, topic: string): void {
  if (!topic || /[#+\u0000]/.test(topic) || topic.startsWith("/") || topic.endsWith("/")) {
    throw new ConfigError(`${what} ${JSON.stringify(topic)} is not a valid topic (no #, +, leading or trailing /)`);
  }
}

function describeError(err: Error & { code?: string | number }): string {
  const text = messageOf(err);
  return typeof err.code === "string" && !text.includes(err.code) ? `${err.code}: ${text}` : text;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([promise, new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  })]).finally(() => clearTimeout(timer));
}
