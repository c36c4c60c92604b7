import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { promisify } from "node:util";
import amqp from "amqplib";
import { afterAll, beforeAll, beforeEach } from "vitest";

/**
 * The RabbitMQ the integration tests use: 127.0.0.1:5672, guest/guest, driven with `rabbitmqctl`.
 * A RabbitMQ that is not running fails every test with how to start it: tests never skip.
 *
 * Each test file gets a virtual host of its own (`wqueue-test-<name>-<random>`), deleted with all its
 * queues when the file ends. So "drop every connection" (`rabbitmqctl close_all_connections
 * --vhost`) hits only the file that asks for it, while the files run in parallel on one server.
 */
export const RABBITMQ_HOST = process.env.WQUEUE_TEST_AMQP_HOST ?? "127.0.0.1:5672";
const HOW_TO_START = "rabbitmq-server -detached   (then wait for `rabbitmqctl await_startup`)";
const run = promisify(execFile);

export interface RabbitVhost {
  /** The vhost's URL with guest/guest (valid once the file's beforeAll ran). */
  readonly url: string;
  readonly name: string;
  /** Drops every client connection of this vhost; the server keeps running. */
  closeConnections(): Promise<void>;
  /**
   * Makes RabbitMQ's consumer_timeout fire now on every channel of this vhost that has a consumer,
   * as if each had held its oldest unacked delivery longer than the timeout (default 30 min): the
   * server closes them with 406 PRECONDITION_FAILED. Reaches into the channel processes with
   * `rabbitmqctl eval` (the timeout is read once per channel; changing the server's setting would
   * touch every other test's channels), so it fails loudly if a RabbitMQ version stores it elsewhere.
   */
  expireConsumerTimeout(): Promise<void>;
  /**
   * A plain amqplib connection to the vhost, for producing and inspecting as an outside client:
   * one per file, opened again after closeConnections() dropped it.
   */
  raw(): Promise<amqp.ChannelModel>;
}

export async function rabbitmqctl(...args: string[]): Promise<string> {
  const { stdout } = await run("rabbitmqctl", args, { timeout: 30_000 });
  return stdout;
}

/** Call at the top of a test file: checks RabbitMQ answers and gives the file its vhost. */
export function requireRabbit(label: string): RabbitVhost {
  const name = `wqueue-test-${label}-${randomUUID().slice(0, 8)}`;
  const url = `amqp://guest:guest@${RABBITMQ_HOST}/${encodeURIComponent(name)}`;
  let unreachable: Error | undefined;
  let created = false;
  let raw: Promise<amqp.ChannelModel> | undefined;

  beforeAll(async () => {
    try {
      const probe = await amqp.connect(`amqp://guest:guest@${RABBITMQ_HOST}`, { timeout: 2000 });
      await probe.close();
    } catch (error) {
      unreachable = new Error(
        `RabbitMQ is not reachable at ${RABBITMQ_HOST} (${(error as Error).message}). ` +
          `These tests need a real RabbitMQ 3.10+ with guest/guest on loopback; start one with:\n  ${HOW_TO_START}`,
      );
      return;
    }
    await rabbitmqctl("add_vhost", name);
    created = true;
    await rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*");
  });
  beforeEach(() => {
    if (unreachable) throw unreachable;
  });
  afterAll(async () => {
    await (await raw?.catch(() => undefined))?.close().catch(() => {});
    if (created) await rabbitmqctl("delete_vhost", name);
  });

  return {
    url,
    name,
    closeConnections: async () => {
      await rabbitmqctl("close_all_connections", "--vhost", name, "wqueue test: dropping connections");
    },
    expireConsumerTimeout: async () => {
      const answer = await rabbitmqctl("eval", expireConsumerTimeoutCode(name));
      if (!/^[1-9]\d*$/.test(answer.trim())) throw new Error(`no consumer channel's timeout shortened in ${name}: ${answer}`);
    },
    raw: () => {
      if (raw === undefined) {
        const opening = amqp.connect(url, { timeout: 2000 }).then((connection) => {
          connection.on("error", () => {}); // close_all_connections in a test is expected
          connection.on("close", () => {
            if (raw === opening) raw = undefined;
          });
          return connection;
        });
        opening.catch(() => {
          if (raw === opening) raw = undefined;
        });
        raw = opening;
      }
      return raw;
    },
  };
}

/**
 * Erlang for `rabbitmqctl eval`: in each consuming channel of `vhost`, sets the field of the
 * channel's #conf record that holds the configured consumer_timeout to 1 ms, then sends the channel
 * the `tick` its timer would send, which checks the timeout. Evaluates to how many it changed.
 */
function expireConsumerTimeoutCode(vhost: string): string {
  return `
    {ok, Timeout} = application:get_env(rabbit, consumer_timeout),
    Vhost = <<"${vhost}">>,
    Channels = [P || P <- rabbit_channel:list(), [{vhost, V}, {consumer_count, N}] <- [rabbit_channel:info(P, [vhost, consumer_count])], V =:= Vhost, N > 0],
    Shorten = fun(Conf) -> [Field] = [F || F <- lists:seq(2, tuple_size(Conf)), element(F, Conf) =:= Timeout], setelement(Field, Conf, 1) end,
    InCh = fun(Ch) -> setelement(2, Ch, Shorten(element(2, Ch))) end,
    InServer = fun(S) -> [At] = [I || I <- lists:seq(2, tuple_size(S)), is_tuple(element(I, S)), tuple_size(element(I, S)) > 1, element(1, element(I, S)) =:= ch], setelement(At, S, InCh(element(At, S))) end,
    [begin sys:replace_state(P, InServer), P ! tick end || P <- Channels],
    length(Channels).`;
}

/** Polls `condition` until it holds, failing after `timeoutMs` with what was awaited. */
export async function waitFor(what: string, condition: () => boolean | Promise<boolean>, timeoutMs = 5000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
