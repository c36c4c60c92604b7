import { hostname } from "node:os";
import { type JetStreamClient, type JetStreamManager, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection as Client } from "@nats-io/transport-node";
import { BrokerUnreachableError } from "../../errors.js";
import type { BrokerLog } from "../contract.js";
import { withDeadline } from "./backoff.js";
import type { NatsUrl } from "./nats-url.js";

/** Bounds the TCP connect and the NATS handshake of the first connection. */
const CONNECT_TIMEOUT_MS = 3000;
/** Bounds every JetStream API call (stream and consumer management, publish acks). */
export const API_TIMEOUT_MS = 5000;
const RECONNECT_WAIT_MS = 250;
/** close() stops waiting for the last acks to be flushed after this long. */
const CLOSE_DEADLINE_MS = 2000;

export interface NatsClients {
  nc: Client;
  js: JetStreamClient;
  jsm: JetStreamManager;
}

export type ConnectionEvent = "disconnect" | "reconnect";

/**
 * One NATS connection with its JetStream contexts. The first connect() fails fast: a
 * BrokerUnreachableError with the redacted URL within about CONNECT_TIMEOUT_MS when the server does
 * not answer, or when it answers without JetStream. From then on the client itself reconnects,
 * forever, every RECONNECT_WAIT_MS (plus jitter), resubscribing its subscriptions; listeners hear of
 * each disconnect and reconnect (pull consumers re-issue their pull requests: ./PullWindow.ts), and
 * the BrokerLog of each, with the redacted URL and messages scrubbed of the credentials.
 */
export class NatsConnection {
  readonly #listeners = new Set<(event: ConnectionEvent) => void>();
  #clients: NatsClients | undefined;
  #connecting: Promise<NatsClients> | undefined;
  #connected = false;
  #closed: Promise<void> | undefined;

  constructor(
    readonly config: NatsUrl,
    readonly log: BrokerLog,
  ) {}

  /** Connected right now (not between a disconnect and the reconnect). */
  get connected(): boolean {
    return this.#connected;
  }

  get connectedOnce(): boolean {
    return this.#clients !== undefined;
  }

  connect(): Promise<void> {
    return this.clients().then(() => undefined);
  }

  /** The clients, connecting first if this is the first use. */
  clients(): Promise<NatsClients> {
    if (this.#closed) return Promise.reject(new Error(`nats broker ${this.config.url} is closed`));
    if (this.#clients) return Promise.resolve(this.#clients);
    this.#connecting ??= this.#open().then(
      (clients) => {
        if (this.#closed) {
          void clients.nc.close();
          throw new Error(`nats broker ${this.config.url} is closed`);
        }
        this.#clients = clients;
        this.#connected = true;
        void this.#watch(clients.nc);
        return clients;
      },
      (error: unknown) => {
        this.#connecting = undefined; // a later connect() tries again
        throw error;
      },
    );
    return this.#connecting;
  }

  /**
   * Resolves once connected (at once if connected now), or after `timeoutMs` regardless: requests
   * made while disconnected are buffered by the client, but their replies can get lost with a
   * restarting server, costing a whole request timeout; better to send them after the reconnect.
   */
  async whenConnected(timeoutMs: number): Promise<void> {
    if (this.#connected || this.#clients === undefined || this.#closed) return;
    let unsubscribe = () => {};
    await withDeadline(new Promise<void>((resolve) => (unsubscribe = this.onEvent(() => this.#connected && resolve()))), timeoutMs);
    unsubscribe();
  }

  /** Calls `listener` on every disconnect and reconnect; returns the unsubscribe. */
  onEvent(listener: (event: ConnectionEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }

  /** Hides the password and token should a server or library ever echo them. */
  scrub(message: string): string {
    return this.config.secrets.reduce((text, secret) => text.replaceAll(secret, "***"), message);
  }

  /** Idempotent: flushes what is buffered (acks, naks), then closes; no reconnecting after. */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      const clients = this.#clients ?? (await this.#connecting?.catch(() => undefined));
      this.#connected = false;
      if (clients === undefined || clients.nc.isClosed()) return;
      await withDeadline(clients.nc.flush(), CLOSE_DEADLINE_MS);
      await withDeadline(clients.nc.close(), CLOSE_DEADLINE_MS);
    })();
    return this.#closed;
  }

  async #open(): Promise<NatsClients> {
    const { config } = this;
    let nc: Client;
    try {
      nc = await connect({
        servers: config.server,
        user: config.user,
        pass: config.pass,
        token: config.token,
        tls: config.tls ? {} : undefined,
        name: `wqueue ${hostname()} pid ${process.pid}`,
        timeout: CONNECT_TIMEOUT_MS,
        maxReconnectAttempts: -1,
        reconnectTimeWait: RECONNECT_WAIT_MS,
        reconnectJitter: 100,
        pingInterval: 20_000,
        ignoreClusterUpdates: true,
      });
    } catch (error) {
      throw new BrokerUnreachableError(`cannot reach NATS at ${config.url}: ${this.scrub((error as Error).message)}`);
    }
    try {
      // Asks the server for the account's JetStream info: fails at once on a server without -js.
      const jsm = await jetstreamManager(nc, { timeout: API_TIMEOUT_MS });
      return { nc, js: jsm.jetstream(), jsm };
    } catch (error) {
      await nc.close().catch(() => {});
      const why = this.scrub((error as Error).message);
      throw new BrokerUnreachableError(`NATS at ${config.url} answers, but JetStream does not (${why}); start nats-server with -js`);
    }
  }

  async #watch(nc: Client): Promise<void> {
    const { url } = this.config;
    for await (const status of nc.status()) {
      switch (status.type) {
        case "disconnect":
          this.#connected = false;
          this.log("warn", `nats ${url}: connection lost; reconnecting`);
          this.#emit("disconnect");
          break;
        case "reconnect":
          this.#connected = true;
          this.log("info", `nats ${url}: reconnected`);
          this.#emit("reconnect");
          break;
        case "error":
          this.log("warn", `nats ${url}: ${this.scrub(status.error.message)}`);
          break;
        case "staleConnection":
          this.log("warn", `nats ${url}: the server stopped answering pings; reconnecting`);
          break;
        case "ldm":
          this.log("info", `nats ${url}: the server is shutting down (lame duck mode)`);
          break;
        case "slowConsumer":
          this.log("warn", `nats ${url}: slow consumer, ${status.pending} messages pending on ${status.sub.getSubject()}`);
          break;
        default:
          break;
      }
    }
    const error = await nc.closed();
    if (error && !this.#closed) this.log("error", `nats ${url}: connection closed for good: ${this.scrub(error.message)}`);
  }

  #emit(event: ConnectionEvent): void {
    for (const listener of this.#listeners) listener(event);
  }
}
