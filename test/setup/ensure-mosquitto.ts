import { execFile } from "node:child_process";
import { Socket } from "node:net";
import { promisify } from "node:util";
import { waitFor } from "../helpers.js";

const run = promisify(execFile);
const HOST = "127.0.0.1";
const PORT = 1883;
const START = "mosquitto -d -c /etc/mosquitto/mosquitto.conf";

function answers(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once("error", () => done(false));
    socket.connect(PORT, HOST, () => done(true));
  });
}

/**
 * Makes sure Mosquitto listens on 127.0.0.1:1883 (the MQTT tests' broker), starting Debian's
 * mosquitto with its packaged config when it does not; fails with how to do it by hand otherwise.
 */
export async function ensureMosquitto(): Promise<void> {
  if (await answers()) return;
  await run("sh", ["-c", START], { timeout: 30_000 }).catch(() => {});
  const up = await waitFor("Mosquitto on 127.0.0.1:1883", answers, 15_000).then(
    () => true,
    () => false,
  );
  if (!up) throw new Error(`Mosquitto does not answer at ${HOST}:${PORT}. Start it with: ${START} (apt-get install mosquitto mosquitto-clients)`);
}
