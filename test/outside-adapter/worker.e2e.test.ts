import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { ROOT, type RunningCli, runCli, startCli, tempDir, WQUEUE_IMPORT } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";

const ADAPTER = pathToFileURL(path.join(ROOT, "test/fixtures/outside-adapter/folder-broker.ts")).href;

/**
 * An app that plugs in the folder adapter (written outside src/) twice: as the `folder://` scheme
 * (registerBroker), and as a named broker given by a factory. Each handler appends what it got
 * to a file, so the test sees what ran.
 */
function writeFolderApp(dir: string): string {
  const file = path.join(dir, "app.ts");
  writeFileSync(
    file,
    `import { appendFileSync } from "node:fs";
import { registerBroker, WQueue } from ${JSON.stringify(WQUEUE_IMPORT)};
import { openFolderBroker } from ${JSON.stringify(ADAPTER)};

registerBroker("folder", openFolderBroker);

export const app = new WQueue({
  brokers: { audit: (log) => openFolderBroker(${JSON.stringify(`folder://${dir}/audit-queues`)}, log) },
});

app.listenEvents("greetings", (message: { body: { name: string } }) => {
  appendFileSync(${JSON.stringify(path.join(dir, "greetings.out"))}, message.body.name + "\\n");
});
app.listenEvents("audit", (message: { body: { what: string } }) => {
  appendFileSync(${JSON.stringify(path.join(dir, "audit.out"))}, message.body.what + "\\n");
}, { broker: "audit" });
`,
  );
  return file;
}

const running: RunningCli[] = [];
const dirs: string[] = [];
afterEach(() => {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

const lines = (file: string) => (existsSync(file) ? readFileSync(file, "utf8").split("\n").filter(Boolean) : []);

describe("an adapter from outside under wqueue worker", () => {
  it("push --app and the worker use the registered scheme and the app's broker factory", async () => {
    const dir = tempDir();
    dirs.push(dir);
    const app = writeFolderApp(dir);
    const url = `folder://${dir}/queues`;

    // push loads the app for its registerBroker, then publishes on the URL / the named broker.
    const pushed = await runCli(["push", "--app", app, "--broker", url, "greetings", '{"name":"ada"}']);
    expect(pushed.stderr).toBe("");
    expect(pushed.code).toBe(0);
    expect((await runCli(["push", "--app", app, "--broker", "audit", "audit", '{"what":"login"}'])).code).toBe(0);

    const worker = startCli(["worker", "-a", app, "--broker", url]);
    running.push(worker);
    const ready = await worker.waitForLine("ready", (line) => line.includes('"msg":"ready:'), 30_000);
    expect(ready).toContain("(folder, at-least-once)");
    await waitFor("both handlers ran", () => lines(path.join(dir, "greetings.out")).length + lines(path.join(dir, "audit.out")).length >= 2, 15_000);

    // One more while it runs: it wakes up and handles it.
    expect((await runCli(["push", "--app", app, "--broker", url, "greetings", '{"name":"grace"}'])).code).toBe(0);
    await waitFor("the second greeting", () => lines(path.join(dir, "greetings.out")).length >= 2, 15_000);
    worker.child.kill("SIGTERM");
    expect(await worker.exited).toBe(0);
    expect(lines(path.join(dir, "greetings.out"))).toEqual(["ada", "grace"]);
    expect(lines(path.join(dir, "audit.out"))).toEqual(["login"]);
  }, 90_000);

  it("without the app, the scheme is unknown: one line that says how to add one, exit 2", async () => {
    const result = await runCli(["push", "--broker", "folder:///tmp/nowhere", "q", "{}"]);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split("\n")).toHaveLength(1);
    expect(result.stderr).toMatch(/unknown scheme "folder".*registerBroker/);
  });
});
