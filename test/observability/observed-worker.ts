import path from "node:path";
import { type RunningCli, startCli, writeApp } from "../cli/run-cli.js";

const running: RunningCli[] = [];

/** Kills what startObservedWorker started (for afterEach). */
export function stopObservedWorkers(): void {
  for (const cli of running.splice(0)) cli.child.kill("SIGKILL");
}

/** Starts a worker with --http on a free port; returns its base URL. */
export async function startObservedWorker(dir: string, extraArgs: string[] = []) {
  const broker = `sqlite://${path.join(dir, "q.db")}`;
  const app = writeApp(
    dir,
    "app.ts",
    `export const app = new WQueue({ retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 10 } });
app.listenEvents("orders", (m: { body: { fail?: boolean } }) => { if (m.body.fail) throw new TypeError("order rejected"); });
app.listenEvents("audit", () => {}, { decode: "text" });`,
  );
  const cli = startCli(["worker", "-a", app, "--broker", broker, "--http", "127.0.0.1:0", ...extraArgs]);
  running.push(cli);
  const line = await cli.waitForLine("the http line", (l) => l.includes('"msg":"http: '));
  const base = `http://${JSON.parse(line).http}`;
  return { cli, broker, base };
}

