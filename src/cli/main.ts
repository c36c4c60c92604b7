#!/usr/bin/env node
import { readFileSync } from "node:fs";
import { Command } from "commander";
import { supportedSchemes } from "../brokers/registry.js";
import { addDeadLettersCommand } from "./dead-letters-command.js";
import { addPushCommand } from "./push-command.js";
import { addStatsCommand } from "./stats-command.js";
import { addWorkerCommand } from "./worker-command.js";

const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string };

const program = new Command("wqueue")
  .description(`WQueue: run event handlers on message queues (${supportedSchemes().join(", ")})`)
  .version(version)
  .showHelpAfterError()
  .configureOutput({ outputError: (text, write) => write(`wqueue: ${text.replace(/^error: /, "")}`) });

addWorkerCommand(program);
addPushCommand(program);
addDeadLettersCommand(program);
addStatsCommand(program);

await program.parseAsync();
