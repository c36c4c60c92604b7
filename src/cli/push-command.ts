import { createInterface } from "node:readline";
import { type Command, InvalidArgumentError } from "commander";
import { BrokerSet } from "../brokers/BrokerSet.js";
import type { Headers, OutgoingMessage } from "../brokers/contract.js";
import { DEFAULT_BROKER_URL } from "../brokers/registry.js";
import { ConfigError } from "../errors.js";
import { failAndExit } from "./fail.js";

interface PushFlags {
  broker?: string;
  key?: string;
  header: Headers;
  delay?: number;
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
    .option("-b, --broker <url>", "broker URL (else WQUEUE_BROKER_URL, else sqlite://wqueue.db)")
    .option("-k, --key <key>", "message key (partition / ordering key)")
    .option("-H, --header <name=value>", "a header; repeat for more", header, {})
    .option("-d, --delay <ms>", "deliver after this many milliseconds", nonNegativeInt)
    .option("--raw", "send the payload as it is, without checking it is JSON")
    .action(async (queue: string, message: string | undefined, flags: PushFlags) => {
      try {
        await push(queue, message, flags);
      } catch (error) {
        failAndExit(error, false);
      }
    });
}

async function push(queue: string, message: string | undefined, flags: PushFlags): Promise<void> {
  const brokers = new BrokerSet(flags.broker ?? process.env.WQUEUE_BROKER_URL ?? DEFAULT_BROKER_URL);
  try {
    const broker = await brokers.get();
    const toMessage = (payload: string, where: string): OutgoingMessage => {
      if (!flags.raw) {
        try {
          JSON.parse(payload);
        } catch (error) {
          throw new ConfigError(`${where} is not JSON (${(error as Error).message}); use --raw to send it as it is`);
        }
      }
      return { body: Buffer.from(payload), headers: flags.header, key: flags.key, delayMs: flags.delay };
    };
    if (message !== undefined) {
      await broker.publish(queue, [toMessage(message, "the message")]);
      return;
    }
    let batch: OutgoingMessage[] = [];
    let line = 0;
    for await (const text of createInterface({ input: process.stdin, crlfDelay: Number.POSITIVE_INFINITY })) {
      line += 1;
      if (text.trim() === "") continue;
      batch.push(toMessage(text, `stdin line ${line}`));
      if (batch.length >= BATCH) {
        await broker.publish(queue, batch);
        batch = [];
      }
    }
    if (batch.length > 0) await broker.publish(queue, batch);
  } finally {
    await brokers.close();
  }
}
