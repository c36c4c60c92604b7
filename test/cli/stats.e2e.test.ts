import { createServer } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { startObservedWorker, stopObservedWorkers } from "../observability/observed-worker.js";
import { runCli, tempDir } from "./run-cli.js";

afterEach(stopObservedWorkers);

/** A loopback port nothing listens on (it was free a moment ago). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

describe("wqueue stats", () => {
  it("with nothing listening, says so in one line and how to start the worker with --http", async () => {
    const port = await freePort();
    // Port 1 is on fetch's "bad port" list: it must not change the answer.
    for (const address of [`127.0.0.1:${port}`, String(port), "127.0.0.1:1"]) {
      const result = await runCli(["stats", address, "--once"]);
      expect(result.code, address).toBe(2);
      const lines = result.stderr.trim().split("\n");
      expect(lines, address).toHaveLength(1);
      const shown = address.includes(":") ? address : `127.0.0.1:${address}`;
      expect(lines[0], address).toBe(
        `wqueue: nothing listens at http://${shown} (ECONNREFUSED): start the worker with --http ${shown}, e.g. wqueue worker -a APP --http ${shown}`,
      );
    }
  });

  it("a malformed address is one line about the address", async () => {
    const result = await runCli(["stats", "127.0.0.1:99999", "--once"]);
    expect(result.code).toBe(2);
    expect(result.stderr.trim()).toBe("wqueue: stats 127.0.0.1:99999: expected PORT or HOST:PORT, e.g. 127.0.0.1:9464");
  });

  it("reads a worker given as a bare port, HOST:PORT or a URL", async () => {
    const { cli, base } = await startObservedWorker(tempDir());
    const { port } = new URL(base);
    for (const address of [port, `127.0.0.1:${port}`, base]) {
      const result = await runCli(["stats", address, "--once"]);
      expect(result.stderr, address).toBe("");
      expect(result.code, address).toBe(0);
      expect(result.stdout, address).toMatch(/^orders\s/m);
    }
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  });
});
