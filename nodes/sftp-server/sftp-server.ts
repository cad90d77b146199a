// Config node: where the tick server is and how to log in; secrets only in credentials.
import type { NodeAPI, NodeDef } from "node-red";
import type { SftpServerCredentials, SftpServerNode } from "../shared/types";
import { fetchHostFingerprint, parsePort } from "../../lib/sftp/connect";
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
};
