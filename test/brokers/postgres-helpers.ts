import { randomUUID } from "node:crypto";
import pg from "pg";

/** The shared PostgreSQL 15 on loopback (trust auth); each test file uses schemas of its own. */
export const POSTGRES_URL = process.env.WQUEUE_TEST_POSTGRES_URL ?? "postgres://postgres@127.0.0.1:5432/test";

/** A fresh schema name, so tests never see each other's rows. */
export const testSchema = (prefix = "wqueue_test") => `${prefix}_${randomUUID().replaceAll("-", "").slice(0, 10)}`;

export const schemaUrl = (schema: string, params = "") => `${POSTGRES_URL}?schema=${schema}${params ? `&${params}` : ""}`;

/** Runs one query on its own connection (for checks and clean-up, outside the adapter). */
export async function sql<R extends pg.QueryResultRow = pg.QueryResultRow>(text: string, values: unknown[] = []): Promise<R[]> {
  const client = new pg.Client({ connectionString: POSTGRES_URL });
  await client.connect();
  try {
    return (await client.query<R>(text, values)).rows;
  } finally {
    await client.end();
  }
}

export const dropSchema = (schema: string) => sql(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
