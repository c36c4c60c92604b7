import type { PoolClient } from "pg";

/**
 * The schema wqueue keeps in PostgreSQL, created on first use and upgraded by numbered migrations
 * recorded in `<schema>.migrations`. Workers starting at once serialize on a transaction-level
 * advisory lock, so exactly one of them runs a migration and the others find it applied.
 *
 * One `messages` table holds every queue; dead letters are rows of the queue `<queue>.dead`. A row
 * is ready when `visible_at <= now()` and it is not done. A claim pushes `visible_at` forward by the
 * lease, counts the attempt and stamps a fresh `receipt`; every settle matches (id, receipt), so a
 * holder whose lease ran out cannot settle the next holder's delivery. `done_at` is set only when
 * acked rows are retained (`?retention=`); the partial indexes leave done rows out.
 *
 * No index covers `visible_at`, `attempt` or `receipt`, and pages keep half their space free
 * (fillfactor 50, migration 2; it was 70), so a claim, a nack or a lease extension can be a HOT
 * update (no new index entries): a claim rewrites every row of the batch, and with small messages
 * 30 % free space held the new versions of fewer than half a page's rows, so about half the
 * claims' updates added two index entries per row. Finding when
 * an idle queue's next row is due then reads that queue's rows through the (queue, id) index,
 * which happens only when a claim found nothing.
 *
 * Any client publishes with `SELECT <schema>.publish('orders', '{"id":1}')` or a plain INSERT: a
 * statement trigger sends one NOTIFY per queue written, delivered when the transaction commits.
 */
const MIGRATIONS: ((schema: string) => string)[] = [
  (s) => `
CREATE TABLE "${s}".messages (
  id bigserial PRIMARY KEY,
  queue text NOT NULL,
  body bytea NOT NULL,
  headers jsonb,                          -- object of strings, NULL when empty
  key text,
  attempt integer NOT NULL DEFAULT 0,     -- deliveries so far
  visible_at timestamptz NOT NULL DEFAULT now(),
  receipt uuid,                           -- token of the latest claim
  created_at timestamptz NOT NULL DEFAULT now(),
  done_at timestamptz                     -- acked, kept for the retention period
) WITH (fillfactor = 70);
CREATE INDEX messages_in_order ON "${s}".messages (queue, id) WHERE done_at IS NULL;
CREATE INDEX messages_done ON "${s}".messages (done_at) WHERE done_at IS NOT NULL;

CREATE FUNCTION "${s}".notify_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('${s}', queue) FROM (SELECT DISTINCT queue FROM inserted) AS queues;
  RETURN NULL;
END $$;
CREATE TRIGGER messages_notify AFTER INSERT ON "${s}".messages
  REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION "${s}".notify_inserted();

CREATE FUNCTION "${s}".publish(queue text, body bytea, headers jsonb DEFAULT NULL, key text DEFAULT NULL, delay_ms bigint DEFAULT 0)
RETURNS bigint LANGUAGE sql AS $$
  INSERT INTO "${s}".messages (queue, body, headers, key, visible_at)
  VALUES (queue, body, NULLIF(headers, '{}'::jsonb), key, now() + GREATEST(delay_ms, 0) * interval '1 millisecond')
  RETURNING id
$$;
CREATE FUNCTION "${s}".publish(queue text, body text, headers jsonb DEFAULT NULL, key text DEFAULT NULL, delay_ms bigint DEFAULT 0)
RETURNS bigint LANGUAGE sql AS $$ SELECT "${s}".publish(queue, convert_to(body, 'UTF8'), headers, key, delay_ms) $$;
CREATE FUNCTION "${s}".publish(queue text, body jsonb, headers jsonb DEFAULT NULL, key text DEFAULT NULL, delay_ms bigint DEFAULT 0)
RETURNS bigint LANGUAGE sql AS $$ SELECT "${s}".publish(queue, convert_to(body::text, 'UTF8'), headers, key, delay_ms) $$;
`,
  // Pages written from now on keep half their space for the claims' new row versions (see above).
  (s) => `ALTER TABLE "${s}".messages SET (fillfactor = 50);`,
];

export const SCHEMA_VERSION = MIGRATIONS.length;

/** Brings the schema to SCHEMA_VERSION; a no-op (one read) when it is there already. */
export async function migrate(client: PoolClient, schema: string): Promise<void> {
  if ((await appliedVersion(client, schema)) >= SCHEMA_VERSION) return;
  await client.query("BEGIN");
  try {
    // Key: the schema's name, so two schemas in one database migrate independently.
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`wqueue-migrations:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
    await client.query(
      `CREATE TABLE IF NOT EXISTS "${schema}".migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`,
    );
    const { rows } = await client.query<{ version: number | null }>(`SELECT max(version) AS version FROM "${schema}".migrations`);
    for (let version = (rows[0]?.version ?? 0) + 1; version <= SCHEMA_VERSION; version += 1) {
      await client.query((MIGRATIONS[version - 1] as (s: string) => string)(schema));
      await client.query(`INSERT INTO "${schema}".migrations (version) VALUES ($1)`, [version]);
    }
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}

async function appliedVersion(client: PoolClient, schema: string): Promise<number> {
  const { rows } = await client.query<{ ready: boolean }>("SELECT to_regclass($1) IS NOT NULL AS ready", [`"${schema}".migrations`]);
  if (!rows[0]?.ready) return 0;
  const applied = await client.query<{ version: number | null }>(`SELECT max(version) AS version FROM "${schema}".migrations`);
  return applied.rows[0]?.version ?? 0;
}
