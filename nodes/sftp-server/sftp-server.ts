// Config node: where the tick server is and how to log in; secrets only in credentials.
import type { NodeAPI, NodeDef } from "node-red";
import type { SftpServerCredentials, SftpServerNode } from "../shared/types";
import { connect, fetchHostFingerprint, parsePort } from "../../lib/sftp/connect";
import { messageOf } from "../../lib/errors";

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
  RED.httpAdmin.post("/tick-backup/sftp-server/fingerprint", RED.auth.needsPermission("sftp-server.write"), async (req, res) => {
    const host = String(req.body?.host ?? "").trim();
    const port = parsePort(req.body?.port);
    if (!host || Number.isNaN(port)) {
      res.status(400).json({ error: "give a host and a port between 1 and 65535" });
      return;
    }
    try {
      res.json({ fingerprint: await fetchHostFingerprint(host, port) });
    } catch (err) {
      res.status(502).json({ error: messageOf(err) });
    }
  });

  // The editor's "Test connection": log in with the dialog's values (credentials typed there, or
  // the deployed node's when the dialog shows the stored placeholder) and list one remote folder.
  RED.httpAdmin.post("/tick-backup/sftp-server/test", RED.auth.needsPermission("sftp-server.write"), async (req, res) => {
    const b = req.body ?? {};
    const host = String(b.host ?? "").trim();
    const port = parsePort(b.port);
    if (!host || Number.isNaN(port) || !b.username) {
      res.status(400).json({ error: "give a host, a port between 1 and 65535 and a username" });
      return;
    }
    const stored = (typeof b.id === "string" && RED.nodes.getCredentials(b.id)) || {};
    const secret = (name: "password" | "privateKey" | "passphrase") => {
      const typed = b.credentials?.[name];
      return typeof typed === "string" && typed !== "" && typed !== "__PWRD__" ? typed : (stored as Record<string, string | undefined>)[name];
    };
    const dir = String(b.remoteDir ?? "").trim() || ".";
    let session;
    try {
      session = await connect({ host, port, username: String(b.username), hostFingerprint: String(b.hostFingerprint ?? ""), password: secret("password"), privateKey: secret("privateKey"), passphrase: secret("passphrase"), readyTimeoutMs: 15_000 });
      const s = session;
      const list = await s.whileOpen(new Promise<{ filename: string; attrs: { isDirectory(): boolean } }[]>((resolve, reject) => s.sftp.readdir(dir, (err, l) => (err ? reject(err) : resolve(l)))));
      const names = list.map((e) => e.filename + (e.attrs.isDirectory() ? "/" : "")).sort();
      res.json({ dir, count: names.length, entries: names.slice(0, 20) });
    } catch (err) {
      res.status(502).json({ error: messageOf(err) });
    } finally {
      await session?.end().catch(() => undefined);
    }
  });
};
