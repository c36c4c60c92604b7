#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { supportedSchemes } from "../brokers/registry.js";
import { addAsyncApiCommand } from "./asyncapi-command.js";
import { addDeadLettersCommand } from "./dead-letters-command.js";
import { addInitCommand } from "./init-command.js";
import { addPushCommand } from "./push-command.js";
import { addStatsCommand } from "./stats-command.js";
import { addWorkerCommand } from "./worker-command.js";

const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };

const program = new Command("wqueue")
  .description(`WQueue: run event handlers on message queues (${supportedSchemes().join(", ")})`)
  .version(version)
  .configureOutput({
    // "error: unknown command 'wrker'\n(Did you mean worker?)" -> one line.
    outputError: (text, write) => write(`wqueue: ${text.replace(/^error: /, "").replace(/\n\(Did you mean (.*)\?\)/, " (did you mean $1?)")}`),
  });

addWorkerCommand(program);
addPushCommand(program);
addDeadLettersCommand(program);
addStatsCommand(program);
addAsyncApiCommand(program);
addInitCommand(program);

/**
 * A usage error prints its one line and where to read more ("see wqueue worker --help"), not the
 * whole help, and exits 2 (as a config error does); --help and --version still exit 0.
 */
function pointUsageErrorsAtHelp(command: Command, path: string): void {
  command.showHelpAfterError(`see ${path} --help`).exitOverride((error) => process.exit(error.exitCode === 0 ? 0 : 2));
  for (const sub of command.commands) pointUsageErrorsAtHelp(sub, `${path} ${sub.name()}`);
}
pointUsageErrorsAtHelp(program, "wqueue");

await program.parseAsync();
