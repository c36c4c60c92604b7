import { execFile } from "node:child_process";
import { promisify } from "node:util";
import pg from "pg";
import { POSTGRES_URL } from "../brokers/postgres-helpers.js";

const run = promisify(execFile);
const START = "pg_ctlcluster 15 main start";

async function answers(url: string): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
  client.on("error", () => {});
  try {
    await client.connect();
    return undefined;
  } catch (error) {
    return (error as { code?: string }).code ?? (error as Error).message;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Makes sure PostgreSQL answers at POSTGRES_URL (default postgres://postgres@127.0.0.1:5432/test),
 * starting Debian's cluster when it does not and creating the database when it is missing; fails
 * with how to do it by hand when that is impossible (tests never skip silently).
 */
export async function ensurePostgres(): Promise<void> {
  let failure = await answers(POSTGRES_URL);
  if (failure === undefined) return;
  if (failure !== "3D000") {
    await run("sh", ["-c", START], { timeout: 60_000 }).catch(() => {});
    failure = await answers(POSTGRES_URL);
  }
  if (failure === "3D000") {
    const url = new URL(POSTGRES_URL);
    const database = url.pathname.slice(1);
    url.pathname = "/postgres";
    const client = new pg.Client({ connectionString: url.toString() });
    await client.connect();
    await client.query(`CREATE DATABASE "${database}"`).finally(() => client.end());
    failure = await answers(POSTGRES_URL);
  }
  if (failure === undefined) return;
  throw new Error(
    `PostgreSQL does not answer at ${POSTGRES_URL} (${failure}). Start it with: ${START} ` +
      "(trust auth for 127.0.0.1 in pg_hba.conf, a database named test), or set WQUEUE_TEST_POSTGRES_URL",
  );
}
