// Config node: where the tick server is and how to log in; secrets only in credentials.
import type { NodeAPI, NodeDef } from "node-red";
import type { SftpServerCredentials, SftpServerNode } from "../shared/types";
import { connect, fetchHostFingerprint, parsePort } from "../../lib/sftp/connect";
import { ConfigError } from "../../lib/errors";
import { dialogCredentials, editorEndpoint } from "../shared/node-helpers";

interface SftpServerDef extends NodeDef {
  host: string;
  port: number | string;
  username: string;
  hostFingerprint: string;
}

export = (RED: NodeAPI) => {
  RED.nodes.registerType<SftpServerNode, SftpServerDef, object, SftpServerCredentials>(
    "sftp-server",
    function (this: SftpServerNode, def: SftpServerDef) {
      RED.nodes.createNode(this, def);
      const port = parsePort(def.port);
      this.config = () => ({
        host: def.host,
        port,
        username: def.username,
        hostFingerprint: def.hostFingerprint ?? "",
        password: this.credentials?.password,
        privateKey: this.credentials?.privateKey,
        passphrase: this.credentials?.passphrase,
      });
    },
    { credentials: { password: { type: "password" }, privateKey: { type: "password" }, passphrase: { type: "password" } } },
  );

  // The editor's "Fetch host key": the fingerprint the server offers, for a person to compare and pin.
  editorEndpoint(RED, "sftp-server", "fingerprint", async (body) => {
    const { host, port } = address(body);
    return { fingerprint: await fetchHostFingerprint(host, port) };
  });

  // The editor's "Test connection": log in with the dialog's values (credentials typed there, or
  // the deployed node's when the dialog shows the stored placeholder) and list one remote folder.
  editorEndpoint(RED, "sftp-server", "test", async (body) => {
    const { host, port } = address(body);
    if (!body.username) throw new ConfigError("give a host, a port between 1 and 65535 and a username");
    const dir = String(body.remoteDir ?? "").trim() || ".";
    const secrets = dialogCredentials(RED, body, ["password", "privateKey", "passphrase"]);
    const session = await connect({ host, port, username: String(body.username), hostFingerprint: String(body.hostFingerprint ?? ""), ...secrets, readyTimeoutMs: 15_000 });
    try {
      const list = await session.whileOpen(new Promise<{ filename: string; attrs: { isDirectory(): boolean } }[]>((resolve, reject) => session.sftp.readdir(dir, (err, l) => (err ? reject(err) : resolve(l)))));
      const names = list.map((e) => e.filename + (e.attrs.isDirectory() ? "/" : "")).sort();
      return { dir, count: names.length, entries: names.slice(0, 20) };
    } finally {
      await session.end().catch(() => undefined);
    }
  });
};

/** The host and port typed in the dialog, or a ConfigError (a 400) saying what is wrong. */
function address(body: Record<string, unknown>): { host: string; port: number } {
  const host = String(body.host ?? "").trim();
  const port = parsePort(body.port as string | number | undefined);
  if (!host || Number.isNaN(port)) throw new ConfigError("give a host and a port between 1 and 65535");
  return { host, port };
}
