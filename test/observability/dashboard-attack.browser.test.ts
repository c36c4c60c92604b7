import { existsSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { type Browser, chromium } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { runCli, tempDir } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";
import { startObservedWorker, stopObservedWorkers } from "./observed-worker.js";

const CHROMIUM = "/usr/bin/chromium";

let browser: Browser | undefined;
let evilSite: Server | undefined;
afterAll(async () => {
  await browser?.close();
  evilSite?.close();
  stopObservedWorkers();
});

/** Another origin on the same machine: a page that tries, every way a page can, to replay the dead letters. */
async function startEvilSite(replayUrl: string): Promise<string> {
  const page = `<!doctype html><body>
<iframe name="sink"></iframe>
<form id="f" method="POST" action="${replayUrl}" target="sink"></form>
<script>
window.attempts = Promise.allSettled([
  fetch(${JSON.stringify(replayUrl)}, { method: "POST", mode: "no-cors" }),
  fetch(${JSON.stringify(replayUrl)}, { method: "POST", headers: { "x-wqueue-request": "1" } }),
  fetch(${JSON.stringify(replayUrl)}, { method: "POST", mode: "no-cors", body: "x", headers: { "content-type": "text/plain" } }),
]).then(function () { document.getElementById("f").submit(); return "done"; });
</script></body>`;
  evilSite = createServer((_, response) => {
    response.writeHead(200, { "content-type": "text/html" });
    response.end(page);
  });
  await new Promise<void>((resolve) => evilSite?.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(evilSite.address() as { port: number }).port}/`;
}

describe("dashboard attacked from a web page in headless Chromium", () => {
  it("another origin's form and fetches cannot replay, and a rebound DNS name cannot read", async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does it)`);
    const { cli, broker, base } = await startObservedWorker(tempDir());
    const port = new URL(base).port;
    expect((await runCli(["push", "orders", '{"fail":true}', "--broker", broker])).code).toBe(0);
    const deadLetters = async () => (await (await fetch(`${base}/api/dead-letters?queue=orders`)).json()) as unknown[];
    await waitFor("the dead letter", async () => (await deadLetters()).length === 1, 10_000);

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      // evil.example resolves to loopback, as a rebinding attacker's DNS answer would.
      args: ["--no-sandbox", "--disable-gpu", "--no-first-run", `--host-resolver-rules=MAP evil.example 127.0.0.1`],
    });
    const page = await browser.newPage();
    await page.goto(await startEvilSite(`${base}/api/dead-letters/replay?queue=orders`));
    expect(await page.evaluate("window.attempts")).toBe("done");
    await page.waitForLoadState("networkidle");
    // Every attempt reached the worker (or was stopped by the browser): none replayed. (The log
    // line is the proof: a replayed letter that fails again is soon dead a second time.)
    expect(cli.stdout.filter((line) => line.includes("from the dashboard"))).toEqual([]);
    expect(await deadLetters()).toHaveLength(1);

    const rebound = await page.goto(`http://evil.example:${port}/api/dead-letters?queue=orders`);
    expect(rebound?.status()).toBe(403);
    expect(await rebound?.text()).not.toContain("fail");
    expect((await page.goto(`http://evil.example:${port}/`))?.status()).toBe(403);

    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  }, 60_000);
});
