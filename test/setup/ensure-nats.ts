import { execFile } from "node:child_process";
import { connect } from "node:net";
import { promisify } from "node:util";
const run = promisify(execFile);
// How the machine starts its NATS (the same command test/brokers/nats-server.ts prints).
const HOW_TO_START =
  "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log";

/** True when something accepts TCP connections on 127.0.0.1:4222 and greets like NATS (INFO). */
function answers(): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: "127.0.0.1", port: 4222 });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(2000, () => done(false));
    socket.once("data", (data) => done(data.toString().startsWith("INFO")));
    socket.once("error", () => done(false));
  });
}

/** Makes sure NATS with JetStream answers on 127.0.0.1:4222, starting the machine's server if not. */
export async function ensureNats(): Promise<void> {
  if (await answers()) return;
  let why = "";
  try {
    await run("sh", ["-c", HOW_TO_START], { timeout: 20_000 });
  } catch (error) {
    why = (error as Error).message;
  }
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline) {
    if (await answers()) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`NATS does not answer on 127.0.0.1:4222 and could not be started (${why || "no error"}). Start it with: ${HOW_TO_START}`);
}
