import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { Command } from "commander";
import { sqliteDriver } from "../brokers/shared/sqlite-database.js";
import { ConfigError } from "../errors.js";
import { failAndExit } from "./fail.js";

const wqueuePackage = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
  peerDependencies: Record<string, string>;
};
const { version } = wqueuePackage;

/** The files of a new project: a working app on the embedded SQLite broker, typed from its schema. */
export function starterFiles(name: string): Record<string, string> {
  const app = `import { WQueue } from "wqueue";
import { z } from "zod";

// No broker option: the worker uses the embedded SQLite file wqueue.db (--broker or
// WQUEUE_BROKER_URL point it at Redis, RabbitMQ, Kafka, SQS, Kinesis or NATS).
export const app = new WQueue({ name: ${JSON.stringify(name)} });

const Order = z.object({ id: z.string(), amount: z.number().positive() });

app.listenEvents(
  "orders",
  async (message) => {
    // message.body is typed from the schema: { id: string; amount: number }
    console.log(\`order \${message.body.id}: \${message.body.amount.toFixed(2)} (attempt \${message.attempt})\`);
  },
  { schema: Order },
);
`;
  const manifest = {
    name,
    version: "0.1.0",
    private: true,
    type: "module",
    scripts: {
      start: "wqueue worker -a app.ts",
      dev: "wqueue worker -a app.ts --watch",
      push: `wqueue push orders '{"id":"1","amount":9.5}'`,
      asyncapi: "wqueue asyncapi -a app.ts -o asyncapi.yaml",
      typecheck: "tsc --noEmit",
    },
    // The embedded broker's driver on the Node that ran init: better-sqlite3 below Node 24,
    // node:sqlite (nothing to install) from 24 on. prom-client serves /metrics (the deploy/ manifests
    // scrape it); pino-pretty makes the terminal's log lines readable.
    dependencies: {
      wqueue: `^${version}`,
      "prom-client": wqueuePackage.peerDependencies["prom-client"],
      zod: "^4.1.0",
      ...(sqliteDriver() === "better-sqlite3" ? { "better-sqlite3": wqueuePackage.peerDependencies["better-sqlite3"] } : {}),
    },
    devDependencies: {
      "@types/node": "^20.12.0",
      "pino-pretty": wqueuePackage.peerDependencies["pino-pretty"],
      typescript: "^5.9.0",
    },
  };
  const tsconfig = {
    compilerOptions: {
      target: "ES2022",
      module: "NodeNext",
      moduleResolution: "NodeNext",
      lib: ["ES2023"],
      types: ["node"],
      strict: true,
      skipLibCheck: true,
      verbatimModuleSyntax: true,
      noEmit: true,
    },
    include: ["*.ts", "src"],
  };
  return {
    "app.ts": app,
    "package.json": `${JSON.stringify(manifest, null, 2)}\n`,
    "tsconfig.json": `${JSON.stringify(tsconfig, null, 2)}\n`,
    ".gitignore": "node_modules\nwqueue.db*\n",
  };
}

/** A package name from a folder name: lower case, letters, digits, - . _ only. */
function packageName(dir: string): string {
  const name = path.basename(path.resolve(dir)).toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^[._-]+/, "");
  return name || "wqueue-app";
}

export function addInitCommand(program: Command): void {
  program
    .command("init")
    .description("create a new app in a folder: app.ts, package.json and tsconfig.json (then: npm install && npm start)")
    .argument("[dir]", "the folder (created if missing)", ".")
    .action((dir: string) => {
      try {
        const files = starterFiles(packageName(dir));
        const taken = Object.keys(files).filter((file) => existsSync(path.join(dir, file)));
        if (taken.length > 0) throw new ConfigError(`init: ${path.resolve(dir)} already has ${taken.join(", ")}; nothing written`);
        mkdirSync(dir, { recursive: true });
        for (const [file, text] of Object.entries(files)) writeFileSync(path.join(dir, file), text);
        const cd = path.resolve(dir) === process.cwd() ? "" : `cd ${dir} && `;
        process.stdout.write(
          `created ${Object.keys(files).join(", ")} in ${path.resolve(dir)}\nnext: ${cd}npm install && npm start   (then, in another terminal: npm run push)\n`,
        );
      } catch (error) {
        failAndExit(error, false);
      }
    });
}
