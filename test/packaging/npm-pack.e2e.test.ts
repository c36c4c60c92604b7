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
 * Open core's bound (issue 13: at most 45). Measured 29 now; 122 when every client was a
 * dependency, 80 while better-sqlite3 (32 with its installer) and pino-pretty (17) were
 * dependencies, 48 while prom-client (with @opentelemetry/api, tdigest, bintrees) was one.
 */
const MAX_PACKAGES = 45;
const NOT_INSTALLED = ["kafkajs", "amqplib", "@aws-sdk", "@nats-io", "@smithy", "better-sqlite3", "pino-pretty", "prom-client"];

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
function wqueue(
  args: string[],
  logFormat = "json",
): { child: ChildProcess; stdout: string[]; stderr: string[]; exited: Promise<number | null> } {
  const child = spawn(path.join(project, "node_modules/.bin/wqueue"), args, {
    cwd: project,
    env: { ...withoutBrokerUrl(), WQUEUE_LOG_FORMAT: logFormat },
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
  it(`installs at most ${MAX_PACKAGES} packages: no client of another broker, no SQLite driver, no log prettifier, no Prometheus client`, () => {
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

  it("serves --http without prom-client: the dashboard's routes work, /metrics answers 501 naming the package", async () => {
    const worker = wqueue(["worker", "-a", "app.ts", "--broker", "redis://127.0.0.1:6379", "--http", "127.0.0.1:0"]);
    await waitFor(() => `the ready line (stderr: ${worker.stderr.join(" | ")})`, () => worker.stdout.some((line) => line.includes('"msg":"ready:')), 60_000);
    const logged = worker.stdout.map((line) => JSON.parse(line) as { msg: string; http?: string });
    expect(logged.map((line) => line.msg)).toContain("/metrics needs the package prom-client, not installed: npm i prom-client; the dashboard, /api/stats and the health routes work without it");
    const where = logged.find((line) => line.http)?.http;
    expect(where, "the http line").toBeDefined();
    const metrics = await fetch(`http://${where}/metrics`);
    expect(metrics.status).toBe(501);
    expect(((await metrics.json()) as { error: string }).error).toContain("npm i prom-client");
    const stats = await fetch(`http://${where}/api/stats`);
    expect(stats.status).toBe(200);
    expect(((await stats.json()) as { queues: { queue: string }[] }).queues.map((q) => q.queue)).toContain(queue);
    worker.child.kill("SIGTERM");
    expect(await worker.exited).toBe(0);
  }, 120_000);

  it("writes JSON lines when asked for pretty ones without pino-pretty, the first saying how to get them", async () => {
    const worker = wqueue(["worker", "-a", "app.ts", "--broker", "redis://127.0.0.1:6379"], "pretty");
    await waitFor(() => `the ready line (stderr: ${worker.stderr.join(" | ")})`, () => worker.stdout.some((line) => line.includes('"msg":"ready:')), 60_000);
    expect(JSON.parse(worker.stdout[0] as string).msg).toBe("readable log lines need pino-pretty (npm i -D pino-pretty); logging JSON meanwhile");
    worker.child.kill("SIGTERM");
    expect(await worker.exited).toBe(0);
  }, 120_000);

  if (Number(process.versions.node.split(".")[0]) >= 24) {
    it("runs a worker on the default SQLite broker with nothing more installed (node:sqlite)", async () => {
      const worker = wqueue(["worker", "-a", "app.ts"]);
      await waitFor(() => `the ready line (stderr: ${worker.stderr.join(" | ")})`, () => worker.stdout.some((line) => line.includes('"msg":"ready:')), 60_000);
      const push = wqueue(["push", queue, '{"hello":2}']);
      expect(await push.exited, push.stderr.join(" | ")).toBe(0);
      await waitFor("the handler's output", () => existsSync(out) && readFileSync(out, "utf8").includes('{"hello":2}'), 30_000);
      worker.child.kill("SIGTERM");
      expect(await worker.exited).toBe(0);
    }, 120_000);
  } else {
    it.each([
      ["worker", ["worker", "-a", "app.ts"]],
      ["push", ["push", "orders", "{}"]],
    ])("%s on the default SQLite broker names better-sqlite3 (Node 20 and 22) and exits 2", async (_name, args) => {
      const cli = wqueue(args);
      expect(await cli.exited).toBe(2);
      expect(cli.stderr).toEqual(["wqueue: broker sqlite://wqueue.db: sqlite needs the package better-sqlite3, not installed: npm i better-sqlite3"]);
    }, 60_000);
  }

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
