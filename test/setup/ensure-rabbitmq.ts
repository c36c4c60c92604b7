import { execFile } from "node:child_process";
import { promisify } from "node:util";
import amqp from "amqplib";

const run = promisify(execFile);
const URL = "amqp://guest:guest@127.0.0.1:5672";
const START = "rabbitmq-server -detached";

async function answers(): Promise<boolean> {
  try {
    await (await amqp.connect(URL, { timeout: 2000 })).close();
    return true;
  } catch {
    return false;
  }
}

/**
 * Makes sure RabbitMQ answers on 127.0.0.1:5672, starting the machine's server when it does not;
 * fails with how to start it by hand when that is impossible (tests never skip silently).
 */
export async function ensureRabbitmq(): Promise<void> {
  if (await answers()) return;
  let why = "";
  try {
    await run("sh", ["-c", START], { timeout: 30_000 });
    await run("rabbitmqctl", ["await_startup"], { timeout: 120_000 });
  } catch (error) {
    why = (error as Error).message;
  }
  if (await answers()) return;
  throw new Error(`RabbitMQ does not answer on 127.0.0.1:5672 and could not be started (${why || "no error"}). Start it with: ${START}`);
}
