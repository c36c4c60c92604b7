import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, readFileSync, symlinkSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { waitFor } from "../helpers.js";
import { ROOT, runCli, tempDir } from "./run-cli.js";


const started: ChildProcess[] = [];
afterEach(() => {
  for (const child of started.splice(0)) if (child.exitCode === null && child.pid) process.kill(-child.pid, "SIGKILL");
});

/** Runs `npm run SCRIPT` in `dir` in its own process group (the worker it starts is killed with it). */
function npmRun(dir: string, script: string) {
  const { WQUEUE_BROKER_URL: _, ...env } = process.env; // the generated app's default broker, whatever the caller's
  const child = spawn("npm", ["run", "--silent", script], { cwd: dir, detached: true, env: { ...env, WQUEUE_LOG_FORMAT: "json" } });
  started.push(child);
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once("close", resolve));
  return { child, exited, output: () => output };
}

/** What `npm install` would put in node_modules, linked from this checkout (its build, no registry). */
function linkDependencies(project: string): void {
  const modules = path.join(project, "node_modules");
  mkdirSync(path.join(modules, ".bin"), { recursive: true });
  mkdirSync(path.join(modules, "@types"));
  symlinkSync(ROOT, path.join(modules, "wqueue"));
  for (const name of ["zod", "typescript", "@types/node"]) symlinkSync(path.join(ROOT, "node_modules", name), path.join(modules, name));
  symlinkSync(path.join(ROOT, "bin/wqueue.js"), path.join(modules, ".bin/wqueue"));
  symlinkSync(path.join(ROOT, "node_modules/typescript/bin/tsc"), path.join(modules, ".bin/tsc"));
}

describe("wqueue init", () => {
  it("writes a project whose app type-checks and runs on the embedded broker with npm start", async () => {
    const dir = tempDir();
    const project = path.join(dir, "My Shop");
    const init = await runCli(["init", project]);
    expect(init.code).toBe(0);
    expect(init.stdout).toContain("npm install && npm start");
    const manifest = JSON.parse(readFileSync(path.join(project, "package.json"), "utf8"));
    expect(manifest).toMatchObject({ name: "my-shop", type: "module", scripts: { start: "wqueue worker -a app.ts" } });
    expect(manifest.dependencies.wqueue).toMatch(/^\^\d/);
    // The embedded broker's driver: better-sqlite3 to install below Node 24, node:sqlite built in from 24.
    const needsBetterSqlite3 = Number(process.versions.node.split(".")[0]) < 24;
    expect(manifest.dependencies["better-sqlite3"] !== undefined, JSON.stringify(manifest.dependencies)).toBe(needsBetterSqlite3);
    expect(manifest.devDependencies["pino-pretty"]).toMatch(/^\^\d/);
    expect(JSON.parse(readFileSync(path.join(project, "tsconfig.json"), "utf8")).compilerOptions.module).toBe("NodeNext");

    linkDependencies(project);
    const typecheck = npmRun(project, "typecheck");
    expect(await typecheck.exited, typecheck.output()).toBe(0);

    const worker = npmRun(project, "start");
    await waitFor(() => `the ready line (output: ${worker.output()})`, () => worker.output().includes('"msg":"ready:'), 20_000);
    expect(worker.output()).toContain("orders @ sqlite://");
    const push = npmRun(project, "push");
    expect(await push.exited, push.output()).toBe(0);
    await waitFor(() => `the handler's line (output: ${worker.output()})`, () => worker.output().includes("order 1: 9.50 (attempt 1)"), 20_000);
    process.kill(-(worker.child.pid as number), "SIGTERM");
    await worker.exited;
  }, 90_000);

  it("refuses a folder that already has the files: one line, exit 2, nothing overwritten", async () => {
    const dir = tempDir();
    expect((await runCli(["init"], { cwd: dir })).code).toBe(0);
    const before = readFileSync(path.join(dir, "app.ts"), "utf8");
    const again = await runCli(["init"], { cwd: dir });
    expect(again.code).toBe(2);
    expect(again.stderr.trim()).toMatch(/^wqueue: init: .* already has app\.ts, package\.json, tsconfig\.json, \.gitignore; nothing written$/);
    expect(readFileSync(path.join(dir, "app.ts"), "utf8")).toBe(before);
  }, 30_000);
});
