import { execFile, spawn } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import amqp from "amqplib";
import { freePort } from "./free-port.js";

const run = promisify(execFile);
/** Debian's scripts, not the /usr/sbin wrappers: those switch to the rabbitmq user and its shared files. */
const BIN = process.env.WQUEUE_TEST_RABBITMQ_BIN ?? "/usr/lib/rabbitmq/bin";
const START_TIMEOUT_MS = 180_000;

/**
 * A RabbitMQ node of the test's own (node name, AMQP and distribution ports, Mnesia and log
 * directories, config and Erlang cookie all in a temporary directory), for tests that stop and
 * start their server: never the shared node on 5672, which other test files use. It registers its
 * name with the machine's epmd (4369), as every node does. A missing rabbitmq-server fails the
 * test with the reason (tests never skip).
 */
export interface PrivateRabbit {
  /** `amqp://guest:guest@127.0.0.1:<port>` (guest may log in from loopback) */
  readonly url: string;
  /** `rabbitmqctl shutdown` (the node stops as a service would), then starts it again on the same data. */
  restart(): Promise<void>;
  /** Stops the node and removes its directory. */
  stop(): Promise<void>;
}

export async function startPrivateRabbit(): Promise<PrivateRabbit> {
  const dir = mkdtempSync(join(tmpdir(), "wqueue-rabbit-"));
  const [port, distPort] = [await freePort(), await freePort()];
  const node = `wqueue-${port}@localhost`;
  writeFileSync(join(dir, "rabbitmq.conf"), `listeners.tcp.local = 127.0.0.1:${port}\n`);
  writeFileSync(join(dir, "rabbitmq-env.conf"), "ERL_EPMD_ADDRESS=127.0.0.1\n");
  writeFileSync(join(dir, "enabled_plugins"), "[].\n");
  const env = {
    ...process.env,
    HOME: dir, // the Erlang cookie: server and rabbitmqctl read the same one
    RABBITMQ_NODENAME: node,
    RABBITMQ_NODE_PORT: String(port),
    RABBITMQ_DIST_PORT: String(distPort),
    RABBITMQ_MNESIA_BASE: join(dir, "mnesia"),
    RABBITMQ_LOG_BASE: join(dir, "log"),
    RABBITMQ_CONFIG_FILE: join(dir, "rabbitmq.conf"),
    RABBITMQ_CONF_ENV_FILE: join(dir, "rabbitmq-env.conf"),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, "enabled_plugins"),
    RABBITMQ_PLUGINS_EXPAND_DIR: join(dir, "plugins-expand"),
    RABBITMQ_PID_FILE: join(dir, "pid"),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: "-kernel inet_dist_use_interface {127,0,0,1}",
  };
  const url = `amqp://guest:guest@127.0.0.1:${port}`;
  const output = join(dir, "server.out");
  let exited: Promise<unknown> | undefined;

  const answers = async () => {
    try {
      await (await amqp.connect(url, { timeout: 2000 })).close();
      return true;
    } catch {
      return false;
    }
  };
  const start = async () => {
    const out = openSync(output, "a");
    const server = spawn(join(BIN, "rabbitmq-server"), [], { env, stdio: ["ignore", out, out] });
    let gone = false;
    exited = new Promise((resolve) => server.once("exit", resolve)).then(() => {
      gone = true;
    });
    server.once("error", () => {});
    const deadline = Date.now() + START_TIMEOUT_MS;
    while (!(await answers())) {
      if (gone || Date.now() > deadline) {
        await stopNode();
        throw new Error(`private RabbitMQ ${node} did not start: ${readFileSync(output, "utf8").slice(-2000)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  };
  const stopNode = async () => {
    try {
      await run(join(BIN, "rabbitmqctl"), ["-n", node, "shutdown"], { env, timeout: 60_000 });
    } catch {
      // Not running, or not answering: kill the Erlang VM by its pid file.
      try {
        process.kill(Number(readFileSync(join(dir, "pid"), "utf8")), "SIGKILL");
      } catch {}
    }
    await exited;
  };

  await start();
  return {
    url,
    restart: async () => {
      await stopNode();
      await start();
    },
    stop: async () => {
      await stopNode();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
