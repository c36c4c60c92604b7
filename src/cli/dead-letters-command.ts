import type { Command } from "commander";
import { BrokerSet } from "../brokers/BrokerSet.js";
import { deadQueueOf, listDeadLetters, purgeDeadLetters, replayDeadLetters } from "../dead-letters/dead-letters.js";
import { failAndExit } from "./fail.js";
import { openCliBrokers } from "./open-cli-brokers.js";
import { positiveInt } from "./worker-command.js";

interface Flags {
  broker?: string;
  app?: string;
  limit: number;
  to?: string;
  toBroker?: string;
  json?: boolean;
}

const preview = (body: Uint8Array) => {
  const text = Buffer.from(body).toString("utf8");
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
};

/** Opens the broker, runs `work` on it, closes it; errors become one line and a non-zero exit. */
async function withBroker(flags: Flags, work: (broker: Awaited<ReturnType<BrokerSet["get"]>>) => Promise<void>) {
  let brokers: BrokerSet | undefined;
  try {
    const opened = await openCliBrokers(flags);
    brokers = opened.brokers;
    await work(await brokers.get(opened.name));
  } catch (error) {
    await brokers?.close();
    failAndExit(error, false);
  }
  await brokers.close();
}

export function addDeadLettersCommand(program: Command): void {
  const command = program
    .command("dead-letters")
    .description("inspect, replay or purge the dead letters of a queue (QUEUE or QUEUE.dead)");
  const common = (sub: Command) =>
    sub
      .argument("<queue>", "the queue whose dead letters to use (its .dead queue)")
      .option("-b, --broker <url>", "broker URL (else WQUEUE_BROKER_URL, else the --app's default, else sqlite://wqueue.db); with --app also a name from its brokers")
      .option("-a, --app <module>", "load this app module first: its registerBroker adapters and its brokers become usable")
      .option("-n, --limit <n>", "at most this many dead letters", positiveInt, 1000);

  common(command.command("list").description("show dead letters without taking them"))
    .option("--json", "one JSON object per line")
    .action((queue: string, flags: Flags) =>
      withBroker(flags, async (broker) => {
        const letters = await listDeadLetters(broker, deadQueueOf(queue), flags.limit);
        for (const letter of letters) {
          if (flags.json) {
            const { body, ...rest } = letter;
            process.stdout.write(`${JSON.stringify({ ...rest, body: Buffer.from(body).toString("utf8") })}\n`);
          } else {
            process.stdout.write(
              `${letter.id}\t${letter.at ?? "-"}\t${letter.reason ?? "-"}\tattempts=${letter.attempts ?? "-"}\t${letter.error ?? "-"}\t${preview(letter.body)}\n`,
            );
          }
        }
        if (!flags.json) process.stderr.write(`${letters.length} dead letter(s) in ${deadQueueOf(queue)}\n`);
      }),
    );

  common(command.command("replay").description("publish dead letters back to the queue they died on"))
    .option("--to <queue>", "publish them to this queue instead")
    .option("--to-broker <url>", "publish them on this broker (the queue's, when its dead letters are kept on another: deadLetterBroker)")
    .action((queue: string, flags: Flags) =>
      withBroker(flags, async (broker) => {
        const other = flags.toBroker === undefined ? undefined : new BrokerSet(flags.toBroker);
        try {
          const replayTo = await other?.get();
          const count = await replayDeadLetters(broker, deadQueueOf(queue), { limit: flags.limit, to: flags.to, replayTo });
          process.stderr.write(`replayed ${count} dead letter(s) from ${deadQueueOf(queue)}${other ? ` to ${replayTo?.url}` : ""}\n`);
        } finally {
          await other?.close();
        }
      }),
    );

  common(command.command("purge").description("delete dead letters"))
    .action((queue: string, flags: Flags) =>
      withBroker(flags, async (broker) => {
        const count = await purgeDeadLetters(broker, deadQueueOf(queue), { limit: flags.limit });
        process.stderr.write(`purged ${count} dead letter(s) from ${deadQueueOf(queue)}\n`);
      }),
    );
}
