import { type Command, InvalidArgumentError } from "commander";
import { checkedPriority } from "../app/message-priority.js";
import { isQueuePattern } from "../brokers/queue-pattern.js";
import type { Headers, OutgoingMessage } from "../brokers/contract.js";
import { ConfigError } from "../errors.js";
import { byteLines } from "./byte-lines.js";
import { failAndExit, RefusedError } from "./fail.js";
import { openCliBrokers } from "./open-cli-brokers.js";

interface PushFlags {
  broker?: string;
  app?: string;
  key?: string;
  header: Headers;
  delay?: number;
  priority?: number;
  raw?: boolean;
}

const BATCH = 500;

function header(value: string, previous: Headers): Headers {
  const eq = value.indexOf("=");
  if (eq <= 0) throw new InvalidArgumentError("expected NAME=VALUE");
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

function nonNegativeInt(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new InvalidArgumentError("must be a whole number >= 0");
  return n;
}

export function addPushCommand(program: Command): void {
  program
    .command("push")
    .description("publish a message to a queue; with no MESSAGE, publish one message per line of stdin")
    .argument("<queue>", "queue name")
    .argument("[message]", "the payload, JSON unless --raw")
    .option("-b, --broker <url>", "broker URL (else WQUEUE_BROKER_URL, else the --app's default, else sqlite://wqueue.db); with --app also a name from its brokers")
    .option("-a, --app <module>", "load this app module first: its registerBroker adapters and its brokers become usable")
    .option("-k, --key <key>", "message key (partition / ordering key)")
    .option("-H, --header <name=value>", "a header; repeat for more", header, {})
    .option("-d, --delay <ms>", "deliver after this many milliseconds", nonNegativeInt)
    .option("-p, --priority <n>", "0-9, higher handled first (sqlite, redis reliable lists, amqp with ?maxPriority=9)", nonNegativeInt)
    .option("--raw", "send the payload as it is, without checking it is JSON (stdin: each line's bytes unchanged)")
    .action(async (queue: string, message: string | undefined, flags: PushFlags) => {
      try {
        await push(queue, message, flags);
      } catch (error) {
        failAndExit(error, false);
      }
    });
}

async function push(queue: string, message: string | undefined, flags: PushFlags): Promise<void> {
  // As publish() says: a pattern names many queues, a message goes to one.
  if (isQueuePattern(queue)) throw new ConfigError(`wqueue push ${queue}: that is a queue pattern (listenEvents takes those); push to one concrete queue`);
  const { brokers, name } = await openCliBrokers(flags);
  try {
    const broker = await brokers.get(name);
    const priority = checkedPriority(queue, flags.priority, broker);
    let pushed = 0;
    /** Publishes a batch; a broker's refusal (too large, not allowed) becomes one line naming what it refused. */
    const publish = async (batch: OutgoingMessage[], what: string) => {
      try {
        await broker.publish(queue, batch);
      } catch (error) {
        const before = pushed > 0 ? `; the ${pushed} message(s) before it were pushed` : "";
        throw new RefusedError(`${broker.url} refused ${what} to ${queue}: ${String((error as Error).message).replace(/\s*\n\s*/g, " ")}${before}`);
      }
      pushed += batch.length;
    };
    const toMessage = (payload: Buffer, where: string): OutgoingMessage => {
      if (!flags.raw) {
        try {
          JSON.parse(payload.toString("utf8"));
        } catch (error) {
          throw new ConfigError(`${where} is not JSON (${(error as Error).message}); use --raw to send it as it is`);
        }
      }
      return { body: payload, headers: flags.header, key: flags.key, delayMs: flags.delay, priority };
    };
    if (message !== undefined) {
      await publish([toMessage(Buffer.from(message), "the message")], "the message");
    } else {
      // --raw: a line's bytes exactly as they are (only "\n" separates); JSON: a trailing "\r" goes too.
      let batch: OutgoingMessage[] = [];
      let first = 0;
      const what = (last: number) => (first === last ? `the message of stdin line ${first}` : `a message of stdin lines ${first}-${last}`);
      let last = 0;
      for await (const { number, bytes } of byteLines(process.stdin)) {
        const payload = !flags.raw && bytes.at(-1) === 0x0d ? bytes.subarray(0, -1) : bytes;
        if (payload.toString("latin1").trim() === "") continue;
        if (batch.length === 0) first = number;
        last = number;
        batch.push(toMessage(payload, `stdin line ${number}`));
        if (batch.length >= BATCH) {
          await publish(batch, what(last));
          batch = [];
        }
      }
      if (batch.length > 0) await publish(batch, what(last));
      if (pushed === 0) throw new ConfigError("nothing to push: stdin had no message (give MESSAGE, or one message per line on stdin)");
    }
    process.stdout.write(`pushed ${pushed} message${pushed === 1 ? "" : "s"} to ${queue} on ${broker.url}\n`);
  } finally {
    await brokers.close();
  }
}
