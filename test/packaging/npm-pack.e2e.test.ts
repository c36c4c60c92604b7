import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";

/**
 * What a user of Redis only gets: the package as `npm pack` makes it, installed from the npm
 * registry into an empty project with `npm i ./wqueue-*.tgz ioredis`. Broker clients are optional
 * peer dependencies, so none but ioredis is installed, and a URL whose client is missing stops
 * with one line naming it. Slow (it installs from the registry): minutes, not seconds.
 */
const run = promisify(execFile);
const INSTALL_TIMEOUT_MS = 20 * 60_000;
/**
 * Measured: 80 (ioredis 6 included), against 122 when every client was a dependency. Issue 13 asks
 * for 45; the core cannot get there while better-sqlite3 stays a dependency: its 12.x line (the
 * last that runs on Node 20; 13.x needs Node 22 and depends on node-addon-api only) brings
 * prebuild-install and 31 packages under it. A little headroom for patch releases of the others.
 */
const MAX_PACKAGES = 85;
const NOT_INSTALLED = ["kafkajs", "amqplib", "@aws-sdk", "@nats-io", "@smithy"];

const queue = `pack.${randomUUID().slice(0, 8)}`; // the Redis on 6379 is shared
let project: string;
let out: string;
let packages: string[] = [];
const children: ChildProcess[] = [];

beforeAll(async () => {
  project = mkdtempSync(path.join(tmpdir(), "wqueue-pack-"));
  writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "redis-user", private: true, type: "module" }));
  // The dist/ that `npm test` built first (pretest): packing with `prepare` would rebuild it under
  // the CLI tests that run meanwhile.
  if (!existsSync(path.join(ROOT, "dist/cli/main.js"))) throw new Error("dist/ is missing: run npm run build first");
  const packed = await run("npm", ["pack", "--ignore-scripts", "--pack-destination", project, "--silent"], { cwd: ROOT, timeout: 5 * 60_000 });
  const tarball = packed.stdout.trim().split("\n").at(-1) as string;
  try {
    await run("npm", ["install", `./${tarball}`, "ioredis", "--no-audit", "--no-fund"], {
      cwd: project,
      timeout: INSTALL_TIMEOUT_MS,
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (error) {
    const { stderr, message } = error as { stderr?: string; message: string };
    throw new Error(
      `npm install ./${tarball} ioredis failed in ${project} (this test installs from the npm registry: is it reachable?): ${(stderr || message).split("\n").slice(-8).join(" | ")}`,
    );
  }
  const listed = await run("npm", ["ls", "--all", "--parseable"], { cwd: project, maxBuffer: 16 * 1024 * 1024 }).catch(
    (error: { stdout: string }) => error, // npm ls exits 1 on a missing optional peer in some versions; its list is still right
  );
  out = path.join(project, `${queue}.out`);
  writeFileSync(
    path.join(project, "app.ts"),
    `import { appendFileSync } from "node:fs";
import { WQueue } from "wqueue";

export const app = new WQueue();
app.listenEvents(${JSON.stringify(queue)}, (message: { body: { hello: number } }) => {
  appendFileSync(${JSON.stringify(out)}, JSON.stringify(message.body) + "\\n");
});
`,
  );
  packages = [...new Set(listed.stdout.trim().split("\n").slice(1))].map((dir) => path.relative(path.join(project, "node_modules"), dir));
}, INSTALL_TIMEOUT_MS + 6 * 60_000);

afterAll(() => {
  for (const child of children) child.kill("SIGKILL");
  if (project) rmSync(project, { recursive: true, force: true });
});

function withoutBrokerUrl(): NodeJS.ProcessEnv {
  const { WQUEUE_BROKER_URL: _ignored, ...env } = process.env;
  return env;
}

/** Runs the installed CLI in the project, as `npx wqueue ...` would. */
function wqueue(args: string[]): { child: ChildProcess; stdout: string[]; stderr: string[]; exited: Promise<number | null> } {
  const child = spawn(path.join(project, "node_modules/.bin/wqueue"), args, {
    cwd: project,
    env: { ...withoutBrokerUrl(), WQUEUE_LOG_FORMAT: "json" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  const stdout: string[] = [];
  const stderr: string[] = [];
  child.stdout?.on("data", (chunk: Buffer) => stdout.push(...chunk.toString().split("\n").filter(Boolean)));
  child.stderr?.on("data", (chunk: Buffer) => stderr.push(...chunk.toString().split("\n").filter(Boolean)));
  const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
  return { child, stdout, stderr, exited };
}

describe("npm i ./wqueue-*.tgz ioredis", () => {
  it(`installs at most ${MAX_PACKAGES} packages, and no client of another broker`, () => {
    expect(packages).toContain("wqueue");
    expect(packages).toContain("ioredis");
    expect(packages.length, packages.join(", ")).toBeLessThanOrEqual(MAX_PACKAGES);
    expect(packages.filter((name) => NOT_INSTALLED.some((other) => name === other || name.startsWith(`${other}/`)))).toEqual([]);
    expect(readdirSync(path.join(project, "node_modules")).filter((name) => NOT_INSTALLED.includes(name))).toEqual([]);
  });

  it("runs a worker on redis:// that handles a message pushed with redis-cli", async () => {
    const worker = wqueue(["worker", "-a", "app.ts", "--broker", "redis://127.0.0.1:6379"]);
    await waitFor(() => `the ready line (stderr: ${worker.stderr.join(" | ")})`, () => worker.stdout.some((line) => line.includes('"msg":"ready:')), 60_000);
    await run("redis-cli", ["-p", "6379", "RPUSH", queue, '{"hello":1}']);
    await waitFor("the handler's output", () => existsSync(out), 30_000);
    expect(readFileSync(out, "utf8")).toBe('{"hello":1}\n');
    worker.child.kill("SIGTERM");
    expect(await worker.exited).toBe(0);
  }, 120_000);

  it.each([
    ["worker", ["worker", "-a", "app.ts", "--broker", "kafka://127.0.0.1:9092"]],
    ["push", ["push", "--broker", "kafka://127.0.0.1:9092", "orders", "{}"]],
    ["dead-letters", ["dead-letters", "list", "orders", "--broker", "kafka://127.0.0.1:9092"]],
  ])("%s on kafka:// prints one line naming kafkajs and exits 2", async (_name, args) => {
    const cli = wqueue(args);
    expect(await cli.exited).toBe(2);
    expect(cli.stderr).toEqual(["wqueue: broker kafka://127.0.0.1:9092: kafka needs the package kafkajs, not installed: npm i kafkajs"]);
  }, 60_000);

  it("names every missing package of a broker at once (Kinesis with its Redis checkpoints present)", async () => {
    const cli = wqueue(["push", "--broker", "kinesis://127.0.0.1:4567", "events", "{}"]);
    expect(await cli.exited).toBe(2);
    expect(cli.stderr).toEqual([
      "wqueue: broker kinesis://127.0.0.1:4567: kinesis needs the packages @aws-sdk/client-kinesis and @smithy/node-http-handler, not installed: npm i @aws-sdk/client-kinesis @smithy/node-http-handler",
    ]);
  }, 60_000);
});
