import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openRaw } from "./nats-server.js";

/**
 * A nats-server of the test's own, with JetStream, on a free port and a store directory of its
 * own, for tests that kill and restart their server: never the shared one on 4222. SIGKILL loses
 * nothing JetStream acknowledged (written to the store before the ack; the OS keeps it when the
 * process dies). A missing binary fails the test with how to install one (tests never skip).
 */
export const NATS_SERVER = process.env.WQUEUE_TEST_NATS_SERVER ?? "/usr/sbin/nats-server";

export interface PrivateNats {
  readonly port: number;
  /** `nats://[user:pass@]127.0.0.1:<port>` */
  readonly url: string;
  /** SIGKILL, then start again on the same port and store; resolves once JetStream answers. */
  restart(): Promise<void>;
  kill(): Promise<void>;
  start(): Promise<void>;
  /** Kills the server and removes its store. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function answers(port: number, auth: { user?: string; pass?: string }): Promise<boolean> {
  try {
    const raw = await openRaw(`127.0.0.1:${port}`, auth);
    await raw.nc.close();
    return true;
  } catch {
    return false;
  }
}

export async function startPrivateNats(auth: { user?: string; pass?: string } = {}): Promise<PrivateNats> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), "wqueue-nats-"));
  const args = ["-a", "127.0.0.1", "-p", String(port), "-js", "-sd", dir];
  if (auth.user !== undefined) args.push("--user", auth.user, "--pass", auth.pass ?? "");
  let child: ChildProcess | undefined;

  const start = async () => {
    let failure: Error | undefined;
    const started = spawn(NATS_SERVER, args, { stdio: ["ignore", "ignore", "pipe"] });
    let output = "";
    started.stderr?.on("data", (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-2000);
    });
    started.on("error", (error) => {
      failure = new Error(`cannot start ${NATS_SERVER} (${error.message}); these tests need nats-server 2.9+ (apt-get install nats-server)`);
    });
    child = started;
    const deadline = Date.now() + 15_000;
    while (!(await answers(port, auth))) {
      if (failure) throw failure;
      if (started.exitCode !== null) throw new Error(`nats-server on port ${port} exited (${started.exitCode}): ${output}`);
      if (Date.now() > deadline) throw new Error(`nats-server on port ${port} did not answer within 15 s: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const kill = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null || running.signalCode !== null) return;
    const exited = new Promise((resolve) => running.once("exit", resolve));
    running.kill("SIGKILL");
    await exited;
  };
  await start();
  const credentials = auth.user === undefined ? "" : `${auth.user}:${auth.pass ?? ""}@`;
  return {
    port,
    url: `nats://${credentials}127.0.0.1:${port}`,
    restart: async () => {
      await kill();
      await start();
    },
    kill,
    start,
    stop: async () => {
      await kill();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
