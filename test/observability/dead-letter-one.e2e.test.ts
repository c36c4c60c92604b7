import { afterEach, describe, expect, it } from "vitest";
import { runCli, startCli, tempDir, writeApp } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";
import { startObservedWorker, stopObservedWorkers } from "./observed-worker.js";

afterEach(stopObservedWorkers);

interface Letter {
  id: string;
  queue: string;
  error: string;
  headers: Record<string, string>;
  body: string;
}
const POST = { method: "POST", headers: { "x-wqueue-request": "1" } };

describe("one dead letter from the dashboard API", () => {
  it("shows it whole, deletes it alone and replays another alone (SQLite)", async () => {
    const { cli, broker, base } = await startObservedWorker(tempDir());
    const input = [0, 1, 2].map((n) => JSON.stringify({ fail: true, n })).join("\n");
    expect((await runCli(["push", "orders", "--broker", broker], { input })).code).toBe(0);
    const list = async () => (await (await fetch(`${base}/api/dead-letters?queue=orders`)).json()) as Letter[];
    let letters: Letter[] = [];
    await waitFor("3 dead letters", async () => {
      letters = await list();
      return letters.length === 3;
    }, 15_000);
    const [first, second, third] = letters as [Letter, Letter, Letter];

    const one = (await (await fetch(`${base}/api/dead-letters/one?queue=orders&id=${first.id}`)).json()) as { letter: Letter; canReplayOrDeleteOne: boolean };
    expect(one.canReplayOrDeleteOne).toBe(true);
    expect(one.letter).toMatchObject({ id: first.id, queue: "orders", error: "TypeError: order rejected", body: first.body });
    expect(one.letter.headers["x-wqueue-dead-error-stack"]).toMatch(/^TypeError: order rejected\n\s+at /);

    // Protected like replay: no header, no change.
    expect((await fetch(`${base}/api/dead-letters/one/delete?queue=orders&id=${first.id}`, { method: "POST" })).status).toBe(403);
    expect((await fetch(`${base}/api/dead-letters/one/delete?queue=orders&id=${first.id}`, POST)).status).toBe(200);
    expect((await list()).map((l) => l.id)).toEqual([second.id, third.id]);
    expect((await fetch(`${base}/api/dead-letters/one/delete?queue=orders&id=${first.id}`, POST)).status).toBe(404);
    expect((await fetch(`${base}/api/dead-letters/one?queue=orders&id=${first.id}`)).status).toBe(404);

    // Replay one: it leaves the dead-letter queue, runs again (and, still rejected, dies again
    // under a new id), and the third is untouched.
    const metric = async () => Number(/^wqueue_messages_dead_lettered_total\{queue="orders"[^}]*\} (\d+)/m.exec(await (await fetch(`${base}/metrics`)).text())?.[1]);
    expect(await metric()).toBe(3);
    expect(await (await fetch(`${base}/api/dead-letters/one/replay?queue=orders&id=${second.id}`, POST)).json()).toEqual({ replayed: second.id });
    await waitFor("the replayed letter to die again", async () => (await metric()) === 4, 15_000);
    const after = await list();
    expect(after).toHaveLength(2);
    expect(after[0]?.id).toBe(third.id);
    expect(after[1]?.body).toBe(second.body);
    expect(after[1]?.id).not.toBe(second.id);

    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  }, 60_000);

  it("on a broker that cannot address one message, shows it and says replay/delete of one is not supported", async () => {
    const dir = tempDir();
    const queue = `op-one-${process.pid}-${Date.now()}`;
    const app = writeApp(dir, "app.ts", `export const app = new WQueue({ retry: { maxAttempts: 1 } });\napp.listenEvents(${JSON.stringify(queue)}, () => { throw new Error("no"); });`);
    const cli = startCli(["worker", "-a", app, "--broker", "redis://127.0.0.1:6379", "--http", "127.0.0.1:0"]);
    try {
      const base = `http://${JSON.parse(await cli.waitForLine("the http line", (l) => l.includes('"msg":"http: '), 20_000)).http}`;
      await cli.waitForLine("ready", (l) => l.includes('"msg":"ready:'), 20_000);
      expect((await runCli(["push", queue, '{"a":1}', "--broker", "redis://127.0.0.1:6379"])).code).toBe(0);
      let letters: Letter[] = [];
      await waitFor("a dead letter", async () => {
        letters = (await (await fetch(`${base}/api/dead-letters?queue=${queue}`)).json()) as Letter[];
        return letters.length === 1;
      }, 15_000);
      const id = letters[0]?.id ?? "";
      const one = (await (await fetch(`${base}/api/dead-letters/one?queue=${queue}&id=${encodeURIComponent(id)}`)).json()) as { canReplayOrDeleteOne: boolean };
      expect(one.canReplayOrDeleteOne).toBe(false);
      const refused = await fetch(`${base}/api/dead-letters/one/delete?queue=${queue}&id=${encodeURIComponent(id)}`, POST);
      expect(refused.status).toBe(501);
      expect(((await refused.json()) as { error: string }).error).toMatch(/cannot address one dead letter/);
      // Nothing was touched: it is still listed (and purged here, to leave the shared Redis clean).
      expect(((await (await fetch(`${base}/api/dead-letters?queue=${queue}`)).json()) as Letter[]).map((l) => l.id)).toEqual([id]);
      const purge = await runCli(["dead-letters", "purge", queue, "--broker", "redis://127.0.0.1:6379"]);
      expect(purge.code, purge.stderr).toBe(0);
    } finally {
      cli.child.kill("SIGKILL");
    }
  }, 60_000);
});
