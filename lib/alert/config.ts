// From the alert node's fields and credentials to channels. A channel is on when its required fields
// are filled; a half-filled channel is a clear error, not a silent gap.
import { ConfigError } from "../errors";
import { emailChannel, homeAssistantAccess, homeAssistantChannel, ntfyChannel, webhookChannel, type Channel, type EmailOptions } from "./channels";

export interface AlertFields {
  emailHost?: string;
  emailPort?: number | string;
  emailSecurity?: string;
  emailFrom?: string;
  emailTo?: string;
  ntfyServer?: string;
  haUrl?: string;
  haService?: string;
}

export interface AlertCredentials {
  emailUser?: string;
  emailPassword?: string;
  ntfyTopic?: string;
  ntfyToken?: string;
  webhookUrl?: string;
  pingUrl?: string;
  haToken?: string;
}

export interface AlertSetup {
  channels: Channel[];
  pingUrl?: string;
  /** every secret, to be removed from any text that leaves the node */
  secrets: string[];
}

export function alertSetup(f: AlertFields, c: AlertCredentials, env: NodeJS.ProcessEnv = process.env): AlertSetup {
  const channels: Channel[] = [];
  const t = (v: unknown) => (typeof v === "string" ? v.trim() : v === undefined || v === null ? "" : String(v));

  if (t(f.emailHost) || t(f.emailTo)) {
    const security = (t(f.emailSecurity) || "starttls") as EmailOptions["security"];
    if (!["tls", "starttls", "none"].includes(security)) throw new ConfigError(`e-mail security "${security}" is not tls, starttls or none`);
    if (!t(f.emailHost) || !t(f.emailTo) || !t(f.emailFrom)) throw new ConfigError("e-mail needs a server, a From and a To address");
    const port = t(f.emailPort) === "" ? (security === "tls" ? 465 : 587) : Number(f.emailPort);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new ConfigError(`e-mail port ${JSON.stringify(f.emailPort)} is not a port number`);
    channels.push(emailChannel({ host: t(f.emailHost), port, security, user: t(c.emailUser) || undefined, password: c.emailPassword, from: t(f.emailFrom), to: t(f.emailTo) }));
  }
  if (t(c.ntfyTopic)) {
    const server = t(f.ntfyServer) || "https://ntfy.sh";
    checkUrl(server, "ntfy server");
    channels.push(ntfyChannel({ server, topic: t(c.ntfyTopic), token: t(c.ntfyToken) || undefined }));
  }
  if (t(c.webhookUrl)) {
    checkUrl(t(c.webhookUrl), "webhook URL");
    channels.push(webhookChannel({ url: t(c.webhookUrl) }));
  }
  if (t(c.pingUrl)) checkUrl(t(c.pingUrl), "ping URL");
  if (t(f.haService)) {
    const access = homeAssistantAccess(t(f.haUrl) || undefined, t(c.haToken) || undefined, env);
    if (!access) throw new ConfigError("Home Assistant push needs its URL and a long-lived access token (or, in the Home Assistant add-on, neither)");
    checkUrl(access.url, "Home Assistant URL");
    channels.push(homeAssistantChannel({ ...access, service: t(f.haService) }));
  }
  const secrets = [c.emailPassword, c.ntfyTopic, c.ntfyToken, c.webhookUrl, c.pingUrl, c.haToken, env.SUPERVISOR_TOKEN].map(t).filter((s) => s !== "");
  // The path of a webhook or ping URL is its secret (a healthchecks.io UUID, a Slack token): hide it on its own too.
  for (const u of [c.webhookUrl, c.pingUrl]) {
    const p = t(u) ? safePath(t(u)) : "";
    if (p.length >= 8) secrets.push(p);
  }
  return { channels, pingUrl: t(c.pingUrl) || undefined, secrets };
}

function checkUrl(url: string, what: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConfigError(`${what} is not a URL`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") throw new ConfigError(`${what} must start with http:// or https://`);
}

function safePath(url: string): string {
  try {
    const u = new URL(url);
    return u.pathname.replace(/^\/+|\/+$/g, "") + u.search;
  } catch {
    return "";
  }
}
