import { request } from "node:http";
import { afterEach, describe, expect, it } from "vitest";
import { runCli, tempDir } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";
import { startObservedWorker, stopObservedWorkers } from "./observed-worker.js";

afterEach(stopObservedWorkers);

interface Answer {
  status: number;
  body: string;
  headers: Record<string, string | string[] | undefined>;
}

/** A raw HTTP request: unlike fetch, it can send any Host header, as a rebinding browser would. */
function call(base: string, path: string, options: { method?: string; headers?: Record<string, string> } = {}): Promise<Answer> {
  const url = new URL(path, base);
  return new Promise((resolve, reject) => {
    const req = request(url, { method: options.method ?? "GET", headers: options.headers }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (chunk: Buffer) => chunks.push(chunk));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString(), headers: response.headers }));
    });
    req.on("error", reject);
    req.end();
  });
}

/** A worker whose `orders` queue holds one dead letter (payload `{"fail":true}`). */
async function workerWithDeadLetter(extraArgs: string[] = []) {
  const observed = await startObservedWorker(tempDir(), extraArgs);
  expect((await runCli(["push", "orders", '{"fail":true}', "--broker", observed.broker])).code).toBe(0);
  const deadLetters = async () => {
    const answer = await call(observed.base, "/api/dead-letters?queue=orders");
    return answer.status === 200 ? (JSON.parse(answer.body) as unknown[]).length : -1;
  };
  await waitFor("the dead letter", async () => (await deadLetters()) === 1, 10_000);
  return { ...observed, deadLetters, port: new URL(observed.base).port };
}

const REPLAY = "/api/dead-letters/replay?queue=orders";

describe("worker --http refuses cross-site and rebinding requests", () => {
  it("refuses a replay POSTed from another origin, or without the X-WQueue-Request header, and does not replay", async () => {
    const { cli, base, deadLetters } = await workerWithDeadLetter();
    const host = new URL(base).host;
    // The curl of the report: a cross-origin POST, as a web page's form or fetch would send it.
    const fromEvil = await call(base, REPLAY, { method: "POST", headers: { origin: "http://evil.example" } });
    expect(fromEvil.status).toBe(403);
    expect(JSON.parse(fromEvil.body).error).toMatch(/origin http:\/\/evil\.example/);
    // Even with the header, another origin is refused (the header alone would need a CORS preflight
    // the server never grants; this covers a browser that skipped it).
    const evilWithHeader = { origin: "http://evil.example", "x-wqueue-request": "1" };
    expect((await call(base, REPLAY, { method: "POST", headers: evilWithHeader })).status).toBe(403);
    // A browser's Fetch Metadata says cross-site even when Origin is absent.
    const crossSite = { "sec-fetch-site": "cross-site", "x-wqueue-request": "1" };
    expect((await call(base, REPLAY, { method: "POST", headers: crossSite })).status).toBe(403);
    // A simple request (no custom header) is refused whatever its origin: a form cannot add headers.
    const simple = await call(base, REPLAY, { method: "POST", headers: { origin: `http://${host}` } });
    expect(simple.status).toBe(403);
    expect(JSON.parse(simple.body).error).toMatch(/X-WQueue-Request/);
    expect(await deadLetters()).toBe(1);

    // The dashboard's own request: same origin, with the header.
    const own = await call(base, REPLAY, {
      method: "POST",
      headers: { origin: `http://${host}`, "sec-fetch-site": "same-origin", "x-wqueue-request": "1" },
    });
    expect(own.status).toBe(200);
    expect(JSON.parse(own.body)).toEqual({ replayed: 1 });
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  });

  it("refuses a Host that is a DNS name it was not told about, keeps probes and IP hosts working", async () => {
    const { cli, base, port } = await workerWithDeadLetter();
    const rebound = await call(base, "/api/dead-letters?queue=orders", { headers: { host: `evil.example:${port}` } });
    expect(rebound.status).toBe(403);
    expect(rebound.body).not.toContain("fail");
    expect(JSON.parse(rebound.body).error).toMatch(/Host evil\.example.*--http-allowed-hosts/);
    expect((await call(base, "/", { headers: { host: `evil.example:${port}` } })).status).toBe(403);
    expect((await call(base, "/metrics", { headers: { host: `evil.example:${port}` } })).status).toBe(403);

    // What a kubelet probe or a Prometheus scrape sends: Host = the pod's IP.
    for (const host of [`10.1.2.3:${port}`, `[fd00::1]:${port}`, `localhost:${port}`, `127.0.0.1:${port}`]) {
      expect((await call(base, "/metrics", { headers: { host } })).status, host).toBe(200);
    }
    // Probes answer whatever the Host (a load balancer's health check may send any name).
    expect((await call(base, "/healthz", { headers: { host: `evil.example:${port}` } })).status).toBe(200);
    expect((await call(base, "/readyz", { headers: { host: "my-svc.default.svc" } })).status).toBe(200);

    // The page must not be framed (clickjacking of the replay button).
    const page = await call(base, "/");
    expect(page.status).toBe(200);
    expect(page.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
    expect(page.headers["x-frame-options"]).toBe("DENY");
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  });

  it("--http-allowed-hosts admits a service name", async () => {
    const { cli, base, port } = await workerWithDeadLetter(["--http-allowed-hosts", "wqueue.default.svc, Dash.Example"]);
    const host = `wqueue.default.svc:${port}`;
    expect((await call(base, "/api/dead-letters?queue=orders", { headers: { host } })).status).toBe(200);
    expect((await call(base, "/api/stats", { headers: { host: `dash.example:${port}` } })).status).toBe(200);
    expect((await call(base, "/api/stats", { headers: { host: `evil.example:${port}` } })).status).toBe(403);
    const own = await call(base, REPLAY, { method: "POST", headers: { host, origin: `http://${host}`, "x-wqueue-request": "1" } });
    expect(own.status).toBe(200);
    cli.child.kill("SIGTERM");
    expect(await cli.exited).toBe(0);
  });
});
