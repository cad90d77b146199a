// The demo's MQTT broker (aedes, in process, 127.0.0.1 only), so that the example flow's Home
// Assistant publishing runs too. A broker of the user's own on the port is left alone: the demo
// takes a free port instead and says so.
import * as net from "node:net";
import { Aedes } from "aedes";

export interface DemoBroker {
  url: string;
  port: number;
  /** set when the wished-for port was taken */
  note?: string;
  close(): Promise<void>;
}

export async function startDemoBroker(port: number): Promise<DemoBroker> {
  const broker = await Aedes.createBroker();
  const server = net.createServer(broker.handle);
  let note: string | undefined;
  try {
    await listen(server, port);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EADDRINUSE") throw err;
    await listen(server, 0);
    note = `(127.0.0.1:${port} is taken, by a broker of yours perhaps: the demo broker took this free port instead; set DEMO_MQTT_PORT to choose)`;
  }
  const actual = (server.address() as net.AddressInfo).port;
  return {
    url: `mqtt://127.0.0.1:${actual}`,
    port: actual,
    note,
    close: async () => {
      await new Promise<void>((resolve) => broker.close(() => resolve()));
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function listen(server: net.Server, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once("error", onError);
    server.listen(port, "127.0.0.1", () => {
      server.off("error", onError);
      resolve();
    });
  });
}
