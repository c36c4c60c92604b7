import { existsSync, mkdirSync, realpathSync, symlinkSync, writeFileSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { openSqliteDatabase } from "../../src/brokers/shared/sqlite-database.js";
import { waitFor } from "../helpers.js";
import { ROOT, type RunningCli, runCli, startCli, tempDir } from "./run-cli.js";

/**
 * A new user's first hour on the default (SQLite) broker, as a project outside this checkout:
 * its own package.json (CommonJS as `npm init -y` makes it, or ESM), `wqueue` in its node_modules,
 * an `app.ts`, and the CLI run from the project directory with relative paths.
 */
const running: RunningCli[] = [];
afterEach(() => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
});

const isReady = (line: string) => line.includes('"msg":"ready:');

const APP = `import { WQueue } from "wqueue";

export const app = new WQueue({ retry: { maxAttempts: 1 } });

function explode(order: { id: number }): never {
  throw new Error(\`order \${order.id} exploded\`);
}

app.listenEvents("orders", async (message: { body: { id: number } }) => {
  explode(message.body);
});
`;
/** Where the handler's error is made: `app.ts:LINE:COL` of `new Error(` (1-based). */
const THROW_AT = (() => {
  const lines = APP.split("\n");
  const index = lines.findIndex((line) => line.includes("throw new Error"));
  return `app.ts:${index + 1}:${(lines[index] ?? "").indexOf("new Error") + 1}`;
})();

/** A project directory; `type` is the package.json "type" (none: CommonJS, as npm init -y has it). */
function project(type?: "module"): string {
  const dir = realpathSync(tempDir());
  const manifest = { name: "first-hour", version: "1.0.0", main: "index.js", ...(type ? { type } : {}) };
  writeFileSync(path.join(dir, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  mkdirSync(path.join(dir, "node_modules"));
  symlinkSync(ROOT, path.join(dir, "node_modules", "wqueue"), "dir");
  writeFileSync(path.join(dir, "app.ts"), APP);
  return dir;
}

function deadLetterStack(dbFile: string): string | undefined {
  const db = openSqliteDatabase(dbFile, { readOnly: true });
  try {
    const headers = db.prepare("SELECT headers FROM messages WHERE queue = 'orders.dead'").get()?.headers as string | undefined;
    return headers === undefined ? undefined : (JSON.parse(headers) as Record<string, string>)["x-wqueue-dead-error-stack"];
  } finally {
    db.close();
  }
}

describe("a failing handler's stack names app.ts:LINE:COL, in a short log line", () => {
  const cases = [
    { name: "CommonJS project (npm init -y), event loop", type: undefined, model: [] },
    { name: "CommonJS project (npm init -y), --threads 2", type: undefined, model: ["--threads", "2"] },
    { name: 'ESM project ("type": "module"), event loop', type: "module" as const, model: [] },
    { name: 'ESM project ("type": "module"), --threads 2', type: "module" as const, model: ["--threads", "2"] },
  ];
  for (const { name, type, model } of cases) {
    it(name, async () => {
      const dir = project(type);
      const cli = startCli(["worker", "-a", "app.ts", "--broker", "sqlite://q.db", ...model], { cwd: dir });
      running.push(cli);
      const ready = await cli.waitForLine("the ready line", isReady, 20_000);
      // The ready line names the file by its absolute path, though the URL was relative.
      expect(ready).toContain(`orders @ sqlite://${path.join(dir, "q.db")} (sqlite`);
      expect((await runCli(["push", "orders", '{"id":7}', "--broker", "sqlite://q.db"], { cwd: dir })).code).toBe(0);

      const failed = await cli.waitForLine("the dead-letter log line", (line) => line.includes("order 7 exploded"), 20_000);
      expect(failed).not.toContain("data:");
      expect(failed.length).toBeLessThan(2048); // 3.2 KB per frame before
      const logged = JSON.parse(failed) as { err: { stack: string } };
      const [, firstFrame] = logged.err.stack.split("\n");
      expect(firstFrame).toContain(`${path.join(dir, THROW_AT)}`);

      await waitFor("the dead letter", () => deadLetterStack(path.join(dir, "q.db")) !== undefined);
      expect(deadLetterStack(path.join(dir, "q.db"))?.split("\n")[1]).toContain(path.join(dir, THROW_AT));
      cli.child.kill("SIGTERM");
      expect(await cli.exited).toBe(0);
    }, 60_000);
  }
});

describe("first-hour mistakes get one line and exit 2", () => {
  const expectOneLine = (result: { code: number | null; stderr: string }) => {
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    return result.stderr.trim();
  };

  it("a SQLite URL whose directory does not exist is refused, not created", async () => {
    const dir = project();
    const url = `sqlite://${path.join(dir, "nonexistent", "dir", "x.db")}`;
    const worker = expectOneLine(await runCli(["worker", "-a", "app.ts", "--broker", url], { cwd: dir }));
    expect(worker).toBe(`wqueue: broker ${url}: directory ${path.join(dir, "nonexistent", "dir")} does not exist (create it, or fix the path)`);
    expectOneLine(await runCli(["push", "orders", '{"id":1}', "--broker", url], { cwd: dir }));
    expect(existsSync(path.join(dir, "nonexistent"))).toBe(false);
  });

  it("a module that is not there: relative to the current directory, plausible tries only", async () => {
    const dir = project();
    const withExtension = expectOneLine(await runCli(["worker", "-a", "nothere.ts"], { cwd: dir }));
    expect(withExtension).toBe(`wqueue: cannot find app module "nothere.ts" relative to the current directory ${dir}: no file nothere.ts`);
    const bare = expectOneLine(await runCli(["worker", "-a", "nothere"], { cwd: dir }));
    expect(bare).toBe(
      `wqueue: cannot find app module "nothere" relative to the current directory ${dir}: ` +
        'no file nothere.ts (or .mts, .js, .mjs, .cjs, .cts), and no package "nothere"',
    );
  });

  it("an .mts syntax error is reported under its real .mts name", async () => {
    const dir = project();
    writeFileSync(path.join(dir, "broken.mts"), 'import { WQueue } from "wqueue";\nexport const app: WQueue = ;\n');
    const line = expectOneLine(await runCli(["worker", "-a", "broken.mts"], { cwd: dir }));
    expect(line).toContain(`${path.join(dir, "broken.mts")}:2:`);
    expect(line).not.toContain("broken.ts");
  });
});
