import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { stringify } from "yaml";
import { resolveDefaultBrokerUrl } from "../app/WQueue.js";
import { asyncApiDocument } from "./asyncapi-document.js";
import { failAndExit } from "./fail.js";
import { loadApp } from "../app/load-app.js";
import { nearestPackageJson } from "./nearest-package-json.js";

interface AsyncApiFlags {
  app: string;
  output?: string;
  broker?: string;
}

export function addAsyncApiCommand(program: Command): void {
  program
    .command("asyncapi")
    .description("write the AsyncAPI 3.0 document of an app: its queues, brokers, body schemas and dead-letter queues")
    .requiredOption("-a, --app <module>", "app module, as for wqueue worker")
    .option("-o, --output <file>", "write it to this file (.json: JSON, else YAML) instead of stdout")
    .option("-b, --broker <url>", "default broker URL (else WQUEUE_BROKER_URL, else the app's, else sqlite://wqueue.db)")
    .action(async (flags: AsyncApiFlags) => {
      try {
        const { app, file } = await loadApp(flags.app);
        const manifest = projectOf(file);
        const document = asyncApiDocument(app, {
          defaultBrokerUrl: resolveDefaultBrokerUrl(app, flags.broker),
          title: app.options.name ?? manifest?.name ?? path.basename(file),
          version: manifest?.version ?? "0.0.0",
        });
        const text = flags.output?.endsWith(".json") ? `${JSON.stringify(document, null, 2)}\n` : stringify(document, { aliasDuplicateObjects: false });
        if (flags.output === undefined) process.stdout.write(text);
        else {
          writeFileSync(flags.output, text);
          process.stderr.write(`wrote ${flags.output}: ${app.subscriptions.length} queue(s)\n`);
        }
      } catch (error) {
        failAndExit(error, false);
      }
    });
}

/** The app's project name and version, for the document's info. */
function projectOf(file: string): { name?: string; version?: string } | undefined {
  const manifest = nearestPackageJson(file);
  try {
    return manifest === undefined ? undefined : (JSON.parse(readFileSync(manifest, "utf8")) as { name?: string; version?: string });
  } catch {
    return undefined; // an unreadable package.json: the document is still written
  }
}
