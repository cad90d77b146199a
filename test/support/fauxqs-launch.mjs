// Runs under Node 22 (fauxqs needs node:sqlite): starts fauxqs's S3 on 127.0.0.1 only and prints
// its endpoint. fauxqs listens on 0.0.0.0 by itself; the tests must stay on the loopback address.
import http from "node:http";

const listen = http.Server.prototype.listen;
http.Server.prototype.listen = function (...args) {
  if (args[0] && typeof args[0] === "object" && "host" in args[0]) args[0] = { ...args[0], host: "127.0.0.1" };
  return listen.apply(this, args);
};
const { startFauxqs } = await import("fauxqs");
const server = await startFauxqs({ port: 0, logger: false, s3StorageDir: process.argv[2] });
server.createBucket(process.argv[3]);
process.stdout.write(`http://127.0.0.1:${server.port}\n`);
process.stdin.resume();
process.stdin.on("end", () => process.exit(0));
