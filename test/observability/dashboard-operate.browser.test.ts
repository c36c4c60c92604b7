import { existsSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { type Browser, chromium } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteBroker } from "../../src/brokers/sqlite/SqliteBroker.js";
import { ROOT, type RunningCli, startCli, tempDir, writeApp } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";

const CHROMIUM = "/usr/bin/chromium";
const SHOTS = path.join(ROOT, "test-results");

let browser: Browser | undefined;
let cli: RunningCli | undefined;
let dir: string | undefined;
afterAll(async () => {
  await browser?.close();
  cli?.child.kill("SIGKILL");
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("dashboard operating a --processes 2 worker in headless Chromium", () => {
  it("has its charts full on load, lists the children, pauses a queue, shows one dead letter whole and deletes it", async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does it)`);
    dir = tempDir();
    const url = `sqlite://${path.join(dir, "q.db")}`;
    const app = writeApp(
      dir,
      "app.ts",
      `export const app = new WQueue({ retry: { maxAttempts: 2, baseDelayMs: 10, maxDelayMs: 10 } });
app.listenEvents("orders", async (m: { body: { fail?: boolean } }) => { await new Promise((r) => setTimeout(r, 2)); if (m.body.fail) throw new TypeError("order rejected"); });
app.listenEvents("audit", () => {});`,
    );
    cli = startCli(["worker", "-a", app, "--broker", url, "--processes", "2", "--http", "127.0.0.1:0"]);
    const base = `http://${JSON.parse(await cli.waitForLine("the http line", (l) => l.includes('"msg":"http: '), 20_000)).http}`;
    await waitFor("both children ready", () => cli?.stdout.filter((l) => l.includes('"msg":"ready:')).length === 2, 30_000);

    // Traffic for a while before the page opens, so the server's history has something to show.
    const broker = new SqliteBroker(url);
    await broker.publish("orders", [{ body: Buffer.from('{"fail":true}') }, { body: Buffer.from('{"fail":true,"why":"second"}') }]);
    let samples = 0;
    for (let i = 0; samples < 4; i++) {
      await broker.publish(i % 3 ? "orders" : "audit", [{ body: Buffer.from(JSON.stringify({ id: i })) }]);
      await new Promise((resolve) => setTimeout(resolve, 15));
      if (i % 20 === 0) samples = ((await (await fetch(`${base}/api/history`)).json()) as { samples: unknown[] }).samples.length;
    }

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const openedAt = Date.now();
    await page.goto(base);
    // The chart starts before the page opened: its oldest points came from /api/history.
    await expect.poll(async () => Number(await page.locator("#rate").getAttribute("data-since")), { timeout: 10_000 }).toBeLessThan(openedAt - 4000);
    await expect.poll(() => page.locator("#processes tbody tr").count(), { timeout: 10_000 }).toBe(2);
    expect(await page.locator("#processes tbody tr td:nth-child(4)").allTextContents()).toEqual(["yes", "yes"]);
    mkdirSync(SHOTS, { recursive: true });
    await page.screenshot({ path: path.join(SHOTS, "dashboard.png"), fullPage: true });

    // Pause orders on both children from the page.
    await page.locator('#queues tr[data-queue="orders"] button.pause').click();
    await expect.poll(() => page.locator('#queues tr[data-queue="orders"] td:nth-child(1)').textContent(), { timeout: 10_000 }).toBe("orders (paused)");

    // One dead letter, whole.
    await page.selectOption("#dl-queue", "orders");
    await page.click("#dl-refresh");
    await expect.poll(() => page.locator("#dead tbody tr").count(), { timeout: 10_000 }).toBe(2);
    await page.locator("#dead tbody tr").first().locator("button.show-letter").click();
    await expect.poll(() => page.locator("#letter-stack").textContent(), { timeout: 5000 }).toMatch(/^TypeError: order rejected\n\s+at /);
    // The two children handle the two failing orders at once: either may have died first.
    const bodies = ['{"fail":true}', '{"fail":true,"why":"second"}'];
    const shown = (await page.locator("#letter-body").textContent()) ?? "";
    expect(bodies).toContain(shown);
    expect(await page.locator("#letter-headers").textContent()).toContain('"x-wqueue-dead-reason"');
    expect(await page.locator("#letter-delete").isDisabled()).toBe(false);
    await page.locator("#letter").screenshot({ path: path.join(SHOTS, "dashboard-dead-letter.png") });

    page.once("dialog", (dialog) => void dialog.accept());
    await page.click("#letter-delete");
    await expect.poll(() => page.locator("#dead tbody tr").count(), { timeout: 10_000 }).toBe(1);
    // The one left is the other letter (its payload column).
    const left = (await page.locator("#dead tbody tr td:nth-child(6)").textContent()) ?? "";
    expect(left.includes("second"), `left: ${left}, deleted: ${shown}`).toBe(!shown.includes("second"));
    await page.screenshot({ path: path.join(SHOTS, "dashboard-paused.png"), fullPage: true });

    await page.locator('#queues tr[data-queue="orders"] button.pause').click();
    await expect.poll(() => page.locator('#queues tr[data-queue="orders"] td:nth-child(1)').textContent(), { timeout: 10_000 }).toBe("orders");
    await broker.close();
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  }, 90_000);
});
