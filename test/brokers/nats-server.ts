import { randomUUID } from "node:crypto";
import { type JetStreamClient, type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { afterAll, beforeAll, beforeEach } from "vitest";

/**
 * The NATS server with JetStream that the integration tests share: 127.0.0.1:4222. One that is not
 * running fails every test with how to start it: tests never skip.
 *
 * Each test file gets a subject prefix of its own (`wqt-<label>-<random>.`), given to the adapter
 * as `?subjectPrefix=`, so its streams (`WQ_wqt-<label>-<random>_...`) are its own; they are
 * deleted when the file ends.
 */
export const NATS_HOST = process.env.WQUEUE_TEST_NATS_HOST ?? "127.0.0.1:4222";
export const HOW_TO_START =
  "start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- -a 127.0.0.1 -p 4222 -js -sd /var/lib/nats-server -l /var/log/nats-server.log";

export interface RawNats {
  nc: NatsConnection;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

export interface SharedNats {
  /** `nats://127.0.0.1:4222?subjectPrefix=<prefix>` (valid once the file's beforeAll ran). */
  readonly url: string;
  /** This file's subject prefix, ending with ".". */
  readonly prefix: string;
  /** A plain client, as an outside producer or inspector would use (one per file). */
  raw(): Promise<RawNats>;
}

export async function openRaw(servers: string, options: { user?: string; pass?: string } = {}): Promise<RawNats> {
  const nc = await connect({ servers, timeout: 2000, maxReconnectAttempts: -1, reconnectTimeWait: 100, ...options });
  const jsm = await jetstreamManager(nc, { timeout: 5000 });
  return { nc, js: jsm.jetstream(), jsm };
}

/** Deletes every stream whose name starts with `prefix`. */
export async function deleteStreams(jsm: JetStreamManager, prefix: string): Promise<void> {
  const names: string[] = [];
  for await (const name of jsm.streams.names()) if (name.startsWith(prefix)) names.push(name);
  await Promise.all(names.map((name) => jsm.streams.delete(name)));
}

/** Call at the top of a test file: checks NATS answers with JetStream; cleans up at the end. */
export function requireNats(label: string): SharedNats {
  const prefix = `wqt-${label}-${randomUUID().slice(0, 8)}.`;
  let unreachable: Error | undefined;
  let raw: Promise<RawNats> | undefined;

  beforeAll(async () => {
    try {
      raw = openRaw(NATS_HOST);
      await raw;
    } catch (error) {
      raw = undefined;
      unreachable = new Error(
        `NATS with JetStream is not reachable at ${NATS_HOST} (${(error as Error).message}). ` +
          `These tests need a real nats-server 2.9+ started with -js on loopback; start one with:\n  ${HOW_TO_START}`,
      );
    }
  });
  beforeEach(() => {
    if (unreachable) throw unreachable;
  });
  afterAll(async () => {
    const client = await raw?.catch(() => undefined);
    if (client === undefined) return;
    await deleteStreams(client.jsm, `WQ_${prefix.replaceAll(".", "_")}`);
    await client.nc.close();
  });

  return {
    url: `nats://${NATS_HOST}?subjectPrefix=${prefix}`,
    prefix,
    raw: () => {
      if (raw === undefined) throw unreachable ?? new Error("requireNats: beforeAll has not run");
      return raw;
    },
  };
}

/** Polls `condition` until it holds, failing after `timeoutMs` with what was awaited. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
