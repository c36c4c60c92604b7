import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { type AddressInfo, createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import pg from "pg";

/**
 * A PostgreSQL server of the test's own (Debian's postgresql-15 binaries), on a free port with a
 * throwaway data directory, for tests that restart their server: never the shared one on 5432.
 * Run as root (as here), the server runs as the `postgres` OS user, which PostgreSQL requires.
 */
export interface PrivatePostgres {
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  readonly url: string;
  /** Fast shutdown (every connection cut), then start again on the same data. */
  restart(): Promise<void>;
  /** Stops the server and removes its data directory. */
  stop(): Promise<void>;
}

const BIN = process.env.WQUEUE_TEST_POSTGRES_BIN ?? "/usr/lib/postgresql/15/bin";

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

async function answers(url: string): Promise<boolean> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 500 });
  client.on("error", () => {});
  try {
    await client.connect();
    await client.query("SELECT 1");
    return true;
  } catch {
    return false;
  } finally {
    await client.end().catch(() => {});
  }
}

export async function startPrivatePostgres(): Promise<PrivatePostgres> {
  if (!existsSync(join(BIN, "postgres"))) throw new Error(`no PostgreSQL binaries in ${BIN}: apt-get install postgresql-15 (or set WQUEUE_TEST_POSTGRES_BIN)`);
  const asRoot = userInfo().uid === 0;
  const owner = asRoot ? Number(execFileSync("id", ["-u", "postgres"]).toString().trim()) : undefined;
  const run = (command: string, args: string[]) => (asRoot ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, args]) as [string, string[]];
  const root = mkdtempSync(join(tmpdir(), "wqueue-postgres-"));
  const data = join(root, "data");
  const sockets = join(root, "sockets");
  mkdirSync(sockets);
  if (owner !== undefined) {
    chownSync(root, owner, -1);
    chownSync(sockets, owner, -1);
  }
  execFileSync(...run(join(BIN, "initdb"), ["-D", data, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8"]), { stdio: "ignore" });
  const port = await freePort();
  const url = `postgres://postgres@127.0.0.1:${port}/postgres`;
  let child: ChildProcess | undefined;

  const start = async () => {
    const args = ["-D", data, "-p", String(port), "-k", sockets, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"];
    const started = spawn(...run(join(BIN, "postgres"), args), { stdio: ["ignore", "ignore", "pipe"] });
    let output = "";
    started.stderr?.on("data", (chunk: Buffer) => {
      output = (output + chunk.toString()).slice(-2000);
    });
    child = started;
    const deadline = Date.now() + 20_000;
    while (!(await answers(url))) {
      if (started.exitCode !== null) throw new Error(`postgres on port ${port} exited (${started.exitCode}): ${output}`);
      if (Date.now() > deadline) throw new Error(`postgres on port ${port} did not answer within 20 s: ${output}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  };
  const shutdown = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once("exit", resolve));
    // SIGINT to the postmaster itself (runuser does not pass it on): a fast shutdown, every
    // client disconnected.
    const postmaster = Number(readFileSync(join(data, "postmaster.pid"), "utf8").split("\n")[0]);
    process.kill(postmaster, "SIGINT");
    await exited;
  };

  await start();
  return {
    url,
    restart: async () => {
      await shutdown();
      await start();
    },
    stop: async () => {
      await shutdown();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
