/**
 * SuspectSandbox on its own (no broker): a real child process that imports a real app module.
 * What a run there comes to, and that only the handler's own doing counts as a death.
 * The end-to-end verdict on every broker is in test/delivery/poison.e2e.test.ts.
 */
import { existsSync, rmSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { memoryLogger, waitFor } from "../helpers.js";
import type { DeliveryData } from "../../src/pipeline/run-handler.js";
import type { RunnerHandler } from "../../src/runners/create-runner.js";
import { SuspectSandbox } from "../../src/runners/SuspectSandbox.js";
import { tempDir, writeApp } from "../cli/run-cli.js";

const sandboxes: SuspectSandbox[] = [];
afterEach(async () => {
  await Promise.all(sandboxes.splice(0).map((sandbox) => sandbox.close()));
});

const never = new AbortController().signal;

function message(body: unknown, attempt = 4): DeliveryData {
  return { id: "m1", queue: "q", body: Buffer.from(JSON.stringify(body)), headers: {}, key: undefined, attempt };
}

/** A sandbox over an app with one queue "q" whose handler acts on `m.body.do`. */
function sandbox(settings: Partial<RunnerHandler> = {}): SuspectSandbox & { started: () => boolean; markerFile: string } {
  const dir = tempDir();
  const marker = path.join(dir, "started");
  const file = writeApp(
    dir,
    "app.ts",
    `import { writeFileSync } from "node:fs";
export const app = new WQueue();
app.listenEvents("q", async (m: { body: { do: string }; signal: AbortSignal }) => {
  writeFileSync(${JSON.stringify(marker)}, "yes");
  if (m.body.do === "sigkill") process.kill(process.pid, "SIGKILL");
  if (m.body.do === "exit") process.exit(3);
  if (m.body.do === "throw") throw new Error("handler failed in the sandbox");
  if (m.body.do === "hang") await new Promise(() => {});
  if (m.body.do === "pid") throw new Error(String(process.pid));
});`,
  );
  const subscriptions = new Map<string, RunnerHandler>([["default/q", { handler: () => undefined, format: "json", ...settings }]]);
  const created = new SuspectSandbox({ appModule: file, subscriptions, logger: memoryLogger().logger, abortGraceMs: 200 });
  sandboxes.push(created);
  return Object.assign(created, { started: () => existsSync(marker), markerFile: marker });
}

describe("SuspectSandbox", () => {
  it("acks a suspect that succeeds, in a process other than the worker's", async () => {
    const box = sandbox();
    expect(await box.run("default/q", message({ do: "nothing" }), never)).toEqual({ kind: "done", outcome: { type: "ack" } });
    const ran = await box.run("default/q", message({ do: "pid" }, 2), never);
    const pid = ran.kind === "done" && ran.outcome.type === "failed" ? Number(ran.outcome.error.message) : undefined;
    expect(pid).toBeGreaterThan(0);
    expect(pid).not.toBe(process.pid);
  });

  it("reports a SIGKILL and a process.exit() of the handler as a death; the next run gets a new process", async () => {
    const box = sandbox();
    expect(await box.run("default/q", message({ do: "sigkill" }), never)).toEqual({ kind: "died", why: "killed by SIGKILL" });
    expect(await box.run("default/q", message({ do: "exit" }), never)).toEqual({ kind: "died", why: "exited with code 3" });
    expect(await box.run("default/q", message({ do: "nothing" }), never)).toEqual({ kind: "done", outcome: { type: "ack" } });
  });

  it("reports a handler that throws as an ordinary failure, for the worker's retry step to judge", async () => {
    const box = sandbox();
    const result = await box.run("default/q", message({ do: "throw" }, 4), never);
    expect(result).toMatchObject({ kind: "done", outcome: { type: "failed", error: { name: "Error", message: "handler failed in the sandbox" } } });
  });

  it("runs suspects one at a time, so a death is pinned on the message that caused it", async () => {
    const box = sandbox();
    const results = await Promise.all([
      box.run("default/q", message({ do: "nothing" }), never),
      box.run("default/q", message({ do: "sigkill" }), never),
      box.run("default/q", message({ do: "nothing" }), never),
    ]);
    expect(results.map((r) => r.kind)).toEqual(["done", "died", "done"]);
  });

  it("does not count its own kills as deaths: an aborted hung handler and a close() come back as given up", async () => {
    const box = sandbox();
    const controller = new AbortController();
    const hung = box.run("default/q", message({ do: "hang" }), controller.signal);
    await waitFor("the hung handler to start", box.started, 15_000);
    controller.abort(new Error("timeout"));
    expect(await hung).toMatchObject({ kind: "done", outcome: { type: "retry", error: { name: "HandlerAbandoned" } } });
    rmSync(box.markerFile);
    const second = box.run("default/q", message({ do: "hang" }), never);
    await waitFor("the second hung handler to start", box.started, 15_000);
    const closing = box.close();
    expect(await second).toMatchObject({ kind: "done", outcome: { type: "retry", error: { name: "HandlerAbandoned" } } });
    await closing;
  });

  it("enforces the subscription's hardTimeoutMs by killing the sandbox, as a timeout, not a death", async () => {
    const box = sandbox({ hardTimeoutMs: 300 });
    const result = await box.run("default/q", message({ do: "hang" }, 1), never);
    expect(result).toMatchObject({ kind: "done", outcome: { type: "failed", error: { name: "HandlerTimeout" } } });
  });
});
