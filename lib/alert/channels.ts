// The ways to reach a person. Each channel is optional and fails alone: `deliver` sends to all at
// once and reports each one's result. Error texts name the channel and the host, never a URL's path
// or query (a webhook's secret lives there) and never a credential.
import nodemailer from "nodemailer";
import { BackupError, ConfigError, messageOf } from "../errors";
import type { Notice } from "./messages";

export interface Channel {
  /** `email`, `ntfy`, `webhook`, `home-assistant` */
  readonly name: string;
  send(notice: Notice): Promise<void>;
}

export interface Delivery {
  channel: string;
  ok: boolean;
  error?: string;
}

export class ChannelFailed extends BackupError {
  constructor(channel: string, message: string) {
    super("CHANNEL_FAILED", `${channel}: ${message}`, { retryable: true });
    this.name = "ChannelFailed";
  }
}

const TIMEOUT_MS = 15_000;

/** Sends to every channel at once; one failing (or hanging, up to its timeout) never stops the others. */
export async function deliver(notice: Notice, channels: readonly Channel[]): Promise<Delivery[]> {
  const results = await Promise.allSettled(channels.map((c) => c.send(notice)));
  return results.map((r, i) => (r.status === "fulfilled" ? { channel: channels[i].name, ok: true } : { channel: channels[i].name, ok: false, error: messageOf(r.reason) }));
}

export interface EmailOptions {
  host: string;
  port: number;
  /** "tls": TLS from the first byte (465); "starttls": upgrade required (587); "none": plain (a local relay) */
  security: "tls" | "starttls" | "none";
  user?: string;
  password?: string;
  from: string;
  to: string;
  /** false only for a relay with a self-signed certificate */
  rejectUnauthorized?: boolean;
}

export function emailChannel(o: EmailOptions): Channel {
  const transport = nodemailer.createTransport({
    host: o.host,
    port: o.port,
    secure: o.security === "tls",
    requireTLS: o.security === "starttls",
    ignoreTLS: o.security === "none",
    auth: o.user ? { user: o.user, pass: o.password ?? "" } : undefined,
    tls: { rejectUnauthorized: o.rejectUnauthorized !== false },
    connectionTimeout: TIMEOUT_MS,
    greetingTimeout: TIMEOUT_MS,
    socketTimeout: TIMEOUT_MS,
  });
  return {
    name: "email",
    async send(n) {
      try {
        await transport.sendMail({ from: o.from, to: o.to, subject: n.title, text: n.text, priority: n.priority === "high" ? "high" : "normal" });
      } catch (err) {
        const code = (err as { code?: string; responseCode?: number }).responseCode ?? (err as { code?: string }).code;
        const text = /wrong version number/i.test(messageOf(err)) ? "the server does not speak TLS on this port (port 587 usually wants STARTTLS)" : firstLine(messageOf(err));
        throw new ChannelFailed("email", `${o.host}:${o.port} ${code ? `(${code}) ` : ""}${text}`);
      }
    },
  };
}

export interface NtfyOptions {
  /** https://ntfy.sh or a server of one's own */
  server: string;
  topic: string;
  token?: string;
}

const NTFY_PRIORITY = { high: 5, default: 3, low: 2 } as const;

export function ntfyChannel(o: NtfyOptions): Channel {
  return {
    name: "ntfy",
    async send(n) {
      // JSON publishing to the server's root: titles and bodies of any language, no header encoding.
      const tags = n.event.event === "resolved" ? ["white_check_mark"] : n.event.event === "test" ? ["test_tube"] : ["warning"];
      const body = { topic: o.topic, title: n.title, message: n.text, priority: NTFY_PRIORITY[n.priority], tags };
      await postJson("ntfy", o.server.replace(/\/+$/, "") + "/", body, o.token);
    },
  };
}

export interface WebhookOptions {
  /** receives the event as JSON (a credential: such URLs often carry a secret) */
  url?: string;
  /** healthchecks.io-style ping URL (a credential): `<url>` on success, `<url>/fail` on failure, `<url>/start` at a start */
  pingUrl?: string;
}

export function webhookChannel(o: WebhookOptions & { url: string }): Channel {
  return {
    name: "webhook",
    async send(n) {
      await postJson("webhook", o.url, { title: n.title, text: n.text, priority: n.priority, ...n.event });
    },
  };
}

/** A healthchecks.io-style ping: success, `/start` or `/fail`, with a short text body that shows in the service's log. */
export async function ping(pingUrl: string, kind: "start" | "success" | "fail", text = ""): Promise<void> {
  const base = pingUrl.replace(/\/+$/, "");
  const url = kind === "success" ? base : `${base}/${kind}`;
  await request("ping", url, { method: "POST", headers: { "Content-Type": "text/plain; charset=utf-8" }, body: text.slice(0, 10_000) });
}

export interface HomeAssistantOptions {
  /** http://homeassistant.local:8123, or in the add-on http://supervisor/core */
  url: string;
  token: string;
  /** the notify service, `mobile_app_pixel_7` (a leading `notify.` is dropped) */
  service: string;
}

/** The add-on's own access when no URL and token are given: SUPERVISOR_TOKEN at http://supervisor/core. */
export function homeAssistantAccess(url: string | undefined, token: string | undefined, env: NodeJS.ProcessEnv = process.env): { url: string; token: string } | undefined {
  if (url && token) return { url, token };
  if (!url && !token && env.SUPERVISOR_TOKEN) return { url: "http://supervisor/core", token: env.SUPERVISOR_TOKEN };
  return undefined;
}

export function homeAssistantChannel(o: HomeAssistantOptions): Channel {
  const service = o.service.replace(/^notify\./, "");
  if (!/^[a-z0-9_]+$/.test(service)) throw new ConfigError(`Home Assistant notify service "${o.service}" is not a service name like mobile_app_pixel_7`);
  return {
    name: "home-assistant",
    async send(n) {
      // For the companion app, the tag makes the phone replace the incident's earlier notification (the
      // recovery replaces the alarm); other notify platforms may refuse data they do not know.
      const body: Record<string, unknown> = { title: n.title, message: n.text };
      if (service.startsWith("mobile_app_")) body.data = { tag: `tick-backup-${n.event.key}`.replace(/[^A-Za-z0-9_-]/g, "_"), group: "tick-backup" };
      await postJson("home-assistant", `${o.url.replace(/\/+$/, "")}/api/services/notify/${service}`, body, o.token);
    },
  };
}

async function postJson(channel: string, url: string, body: unknown, token?: string): Promise<void> {
  const headers: Record<string, string> = { "Content-Type": "application/json" };
  if (token) headers.Authorization = `Bearer ${token}`;
  await request(channel, url, { method: "POST", headers, body: JSON.stringify(body) });
}

async function request(channel: string, url: string, init: RequestInit): Promise<void> {
  let host: string;
  try {
    host = new URL(url).host;
  } catch {
    throw new ChannelFailed(channel, "the URL is not valid");
  }
  let res: Response;
  try {
    res = await fetch(url, { ...init, redirect: "error", signal: AbortSignal.timeout(TIMEOUT_MS) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string } }).cause?.code ?? (err as Error).name;
    throw new ChannelFailed(channel, `cannot reach ${host} (${cause === "ENOTFOUND" || cause.startsWith("EAI_") ? `${cause}: the name does not resolve` : cause})`);
  }
  await res.arrayBuffer().catch(() => undefined); // free the connection
  if (!res.ok) throw new ChannelFailed(channel, `${host} answered HTTP ${res.status} ${res.statusText}`.trim());
}

function firstLine(s: string): string {
  return s.split("\n")[0].slice(0, 200);
}
