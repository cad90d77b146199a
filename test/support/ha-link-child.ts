// A separate process holding one HaLink, so that a test can kill it (SIGKILL: no clean close, the
// socket dies with the process) and watch the broker deliver the last will.
import { HaLink, type HaLinkOptions } from "../../lib/health/ha-link";
import { discoveryMessages } from "../../lib/health/discovery";

const options = JSON.parse(process.argv[2]) as HaLinkOptions & { archive: string };
const link = new HaLink(options);
link.put(options.archive, { configs: discoveryMessages(options.archive, options) });
link.on("status", (s: HaLink["status"]) => {
  if (s.state === "connected") process.stdout.write("connected\n");
});
