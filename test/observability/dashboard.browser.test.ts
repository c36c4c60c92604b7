import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import { type Browser, chromium } from "playwright-core";
import { afterAll, describe, expect, it } from "vitest";
import { SqliteBroker } from "../../src/brokers/sqlite/SqliteBroker.js";
import { ROOT, tempDir } from "../cli/run-cli.js";
import { startObservedWorker, stopObservedWorkers } from "./observed-worker.js";

const CHROMIUM = "/usr/bin/chromium";
const SCREENSHOT = path.join(ROOT, "test-results", "dashboard.png");

let browser: Browser | undefined;
afterAll(async () => {
  await browser?.close();
  stopObservedWorkers();
});

describe("dashboard in headless Chromium", () => {
  it("shows counts moving while messages flow, lists a dead letter and replays it", async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run does it)`);
    const { cli, broker: url, base } = await startObservedWorker(tempDir());
    const broker = new SqliteBroker(url);
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    await page.goto(base);
    const receivedCell = page.locator('#queues tr[data-queue="orders"] td:nth-child(4)');
    const deadCell = page.locator('#queues tr[data-queue="orders"] td:nth-child(8)');
    const count = async (cell: typeof receivedCell) => Number((await cell.textContent())?.replaceAll(",", ""));

    // Messages flow in the background while the page polls.
    let flowing = true;
    const producer = (async () => {
      for (let i = 0; flowing; i++) {
        await broker.publish("orders", [{ body: Buffer.from(JSON.stringify({ id: i })) }]);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    await expect.poll(() => count(receivedCell), { timeout: 10_000 }).toBeGreaterThan(5);
    const first = await count(receivedCell);
    await expect.poll(() => count(receivedCell), { timeout: 10_000 }).toBeGreaterThan(first + 5);
    flowing = false;
    await producer;

    await broker.publish("orders", [{ body: Buffer.from('{"fail":true}') }]);
    await expect.poll(() => count(deadCell), { timeout: 10_000 }).toBe(1);
    await expect.poll(() => page.locator("#failures tbody tr").count(), { timeout: 5000 }).toBeGreaterThan(0);

    await page.selectOption("#dl-queue", "orders");
    await page.click("#dl-refresh");
    await expect.poll(() => page.locator("#dead tbody tr").count(), { timeout: 5000 }).toBe(1);
    expect(await page.locator("#dead tbody tr td").nth(4).textContent()).toContain("TypeError: order rejected");
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    page.once("dialog", (dialog) => void dialog.accept());
    await page.click("#dl-replay");
    await expect.poll(() => page.locator("#dl-status").textContent(), { timeout: 5000 }).toContain("replayed 1 dead letter(s)");
    // The replayed message ran again (and, still rejected, died a second time).
    await expect.poll(() => count(deadCell), { timeout: 10_000 }).toBe(2);

    // Pause from the page: the row says so, a message published now waits, and Resume runs it.
    const queueCell = page.locator('#queues tr[data-queue="orders"] td:nth-child(1)');
    const pauseButton = page.locator('#queues tr[data-queue="orders"] button.pause');
    await pauseButton.click();
    await expect.poll(() => queueCell.textContent(), { timeout: 10_000 }).toBe("orders (paused)");
    const before = await count(receivedCell);
    await broker.publish("orders", [{ body: Buffer.from('{"id":"after pause"}') }]);
    const backlogCell = page.locator('#queues tr[data-queue="orders"] td:nth-child(10)');
    await expect.poll(() => backlogCell.textContent(), { timeout: 10_000 }).toBe("1");
    expect(await count(receivedCell)).toBe(before);
    await expect.poll(() => pauseButton.textContent(), { timeout: 5000 }).toBe("Resume");
    await pauseButton.click();
    await expect.poll(() => count(receivedCell), { timeout: 10_000 }).toBe(before + 1);
    expect(await queueCell.textContent()).toBe("orders");

    await broker.close();
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  }, 60_000);
});
