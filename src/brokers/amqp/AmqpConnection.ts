import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import amqp, { type ChannelModel } from "amqplib";
import { BrokerUnreachableError } from "../../errors.js";
import { Wakeup } from "../wakeup.js";
import type { AmqpUrl } from "./amqp-url.js";
import { AmqpSession } from "./AmqpSession.js";

/** Where the adapter reports connection trouble; messages name no URL (the caller adds it) and no password. */
export type AmqpEventLog = (level: "debug" | "info" | "warn" | "error", message: string) => void;

/** Bounds the TCP connect and the AMQP handshake of every attempt. */
const CONNECT_TIMEOUT_MS = 3000;
const RECONNECT_FIRST_MS = 100;
const RECONNECT_MAX_MS = 5000;
/** close() stops waiting for the server's close-ok after this long. */
const CLOSE_DEADLINE_MS = 2000;

/**
 * Keeps one AMQP connection to RabbitMQ. The first connect() fails fast (BrokerUnreachableError
 * with the redacted URL within about CONNECT_TIMEOUT_MS); once connected, a lost connection
 * (server restart, `rabbitmqctl close_all_connections`, network) is re-opened forever with capped
 * exponential backoff and jitter, until close(). Each connection is an AmqpSession; listeners
 * (consumers) hear of every new one to open their channels on it again.
 */
export class AmqpConnection {
  readonly #listeners = new Set<(session: AmqpSession) => void>();
  readonly #changed = new Wakeup();
  readonly #closing = new AbortController();
  #session: AmqpSession | undefined;
  #connecting: Promise<void> | undefined;
  #opening: Promise<unknown> | undefined;
  #connectedOnce = false;
  #closed: Promise<void> | undefined;

  constructor(
    readonly config: AmqpUrl,
    readonly log: AmqpEventLog,
  ) {}

  /** True once a first connection was made: from then on, lost ones are re-opened. */
  get connectedOnce(): boolean {
    return this.#connectedOnce;
  }

  connect(): Promise<void> {
    if (this.#closed) return Promise.reject(new Error(`amqp broker ${this.config.url} is closed`));
    if (this.#connectedOnce) return Promise.resolve();
    this.#connecting ??= this.#open().then(
      (session) => this.#adopt(session),
      (error: unknown) => {
        this.#connecting = undefined; // a later connect() tries again
        throw error;
      },
    );
    return this.#connecting;
  }

  /** The live session, else the next one within `timeoutMs` (connecting first if never connected). */
  async session(timeoutMs: number): Promise<AmqpSession> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.#closed) throw new Error(`amqp broker ${this.config.url} is closed`);
      if (this.#session?.alive) return this.#session;
      if (!this.#connectedOnce) await this.connect();
      else if (Date.now() >= deadline) {
        throw new BrokerUnreachableError(`RabbitMQ at ${this.config.url} did not come back within ${timeoutMs} ms`);
      } else {
        // A signal per wait: many publishes waiting on one signal would trip Node's listener warning.
        await this.#changed.wait(new AbortController().signal, deadline - Date.now());
      }
    }
  }

  /** Calls `listener` with the live session, if any, and with every later one. */
  onSession(listener: (session: AmqpSession) => void): () => void {
    this.#listeners.add(listener);
    const live = this.#session;
    if (live?.alive) queueMicrotask(() => this.#listeners.has(listener) && live.alive && listener(live));
    return () => this.#listeners.delete(listener);
  }

  /** Hides the password should a server or library ever echo it. */
  scrub(message: string): string {
    const { password } = this.config;
    return password === "" ? message : message.replaceAll(password, "***");
  }

  /** Idempotent: stops reconnecting and closes the connection (the broker requeues unacked messages). */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      this.#closing.abort();
      this.#changed.notify();
      await this.#opening?.catch(() => {});
      const session = this.#session;
      this.#session = undefined;
      if (session?.alive) await closeModel(session.model);
    })();
    return this.#closed;
  }

  #adopt(session: AmqpSession): void {
    this.#session = session;
    this.#connectedOnce = true;
    this.#changed.notify();
    for (const listener of this.#listeners) listener(session);
  }

  #open(): Promise<AmqpSession> {
    const opening = this.#openSession();
    this.#opening = opening;
    return opening;
  }

  async #openSession(): Promise<AmqpSession> {
    const { url } = this.config;
    let model: ChannelModel;
    try {
      model = await amqp.connect(this.config.connectUrl, {
        timeout: CONNECT_TIMEOUT_MS,
        noDelay: true,
        clientProperties: { connection_name: `wqueue ${hostname()} pid ${process.pid}` },
      });
    } catch (error) {
      throw new BrokerUnreachableError(`cannot reach RabbitMQ at ${url}: ${this.scrub((error as Error).message)}`);
    }
    const session = new AmqpSession(model, this.config, this.log);
    let lastError: Error | undefined;
    model.on("error", (error: Error) => {
      lastError = error;
    });
    model.on("close", () => this.#lost(session, lastError));
    model.on("blocked", (reason: string) => this.log("warn", `RabbitMQ blocks publishing: ${reason}`));
    model.on("unblocked", () => this.log("info", "RabbitMQ accepts publishing again"));
    if (this.#closing.signal.aborted) {
      await closeModel(model);
      throw new Error(`amqp broker ${url} is closed`);
    }
    return session;
  }

  #lost(session: AmqpSession, error: Error | undefined): void {
    session.alive = false;
    if (this.#session !== session) return;
    this.#session = undefined;
    if (this.#closing.signal.aborted) return;
    const why = error ? this.scrub(error.message) : "closed by the server";
    this.log("warn", `connection lost (${why}); reconnecting`);
    void this.#reconnect();
  }

  async #reconnect(): Promise<void> {
    for (let attempt = 1; !this.#closing.signal.aborted; attempt += 1) {
      const base = Math.min(RECONNECT_MAX_MS, RECONNECT_FIRST_MS * 2 ** (attempt - 1));
      try {
        await sleep(base * (0.8 + Math.random() * 0.4), undefined, { signal: this.#closing.signal });
        const session = await this.#open();
        if (this.#closing.signal.aborted) {
          await closeModel(session.model);
          return;
        }
        if (!session.alive) continue; // lost again while it opened
        this.#adopt(session);
        this.log("info", `reconnected (attempt ${attempt})`);
        return;
      } catch (error) {
        if (this.#closing.signal.aborted) return;
        const why = this.scrub((error as Error).message);
        this.log(attempt < 3 ? "info" : "warn", `reconnect attempt ${attempt} failed: ${why}`);
      }
    }
  }
}

/** Closes a connection, giving up on the server's answer after CLOSE_DEADLINE_MS. */
async function closeModel(model: ChannelModel): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<void>((resolve) => {
    timer = setTimeout(resolve, CLOSE_DEADLINE_MS);
  });
  try {
    await Promise.race([model.close().catch(() => {}), deadline]);
  } finally {
    clearTimeout(timer);
  }
}
