import { readdirSync, readFileSync, rmSync } from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { parseAllDocuments } from "yaml";
import { type RunningCli, startCli, tempDir, writeApp } from "../cli/run-cli.js";
import { waitFor } from "../helpers.js";

const DEPLOY = path.resolve(import.meta.dirname, "../../deploy");
const TOKEN = "manifest-test-token";

// biome-ignore lint/suspicious/noExplicitAny: parsed manifests are walked by known paths; a wrong one fails the test.
type Doc = Record<string, any>;

function manifests(): { file: string; doc: Doc }[] {
  const dir = path.join(DEPLOY, "kubernetes");
  return readdirSync(dir)
    .filter((name) => name.endsWith(".yaml"))
    .flatMap((name) =>
      parseAllDocuments(readFileSync(path.join(dir, name), "utf8")).map((parsed) => {
        expect(parsed.errors, name).toEqual([]);
        return { file: name, doc: parsed.toJS() as Doc };
      }),
    );
}

const ofKind = (kind: string) => {
  const found = manifests().filter(({ doc }) => doc.kind === kind);
  expect(found.length, `a ${kind} in deploy/kubernetes`).toBeGreaterThan(0);
  return found.map(({ doc }) => doc);
};

/** The Dockerfile's instructions, continuation lines joined, comments dropped. */
function dockerfile(): { instruction: string; rest: string }[] {
  return readFileSync(path.join(DEPLOY, "Dockerfile"), "utf8")
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith("#"))
    .map((line) => {
      const [instruction = ""] = line.split(/\s+/);
      return { instruction: instruction.toUpperCase(), rest: line.slice(instruction.length).trim() };
    });
}

const execForm = (rest: string): string[] => {
  const parsed: unknown = JSON.parse(rest); // shell form is not JSON: this throws
  expect(Array.isArray(parsed) && parsed.every((part) => typeof part === "string")).toBe(true);
  return parsed as string[];
};

const flag = (args: string[], name: string) => args[args.indexOf(name) + 1];

let running: RunningCli | undefined;
let dir: string | undefined;
afterEach(() => {
  running?.child.kill("SIGKILL");
  running = undefined;
  if (dir) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
});

describe("deploy/", () => {
  it("Dockerfile: node:20-slim, a non-root user, tini forwarding signals to the worker in exec form", () => {
    const lines = dockerfile();
    expect(lines[0]).toEqual({ instruction: "FROM", rest: "node:20-slim" });
    const users = lines.filter((line) => line.instruction === "USER").map((line) => line.rest);
    expect(users.at(-1)).toBeDefined();
    expect(["root", "0"]).not.toContain(users.at(-1)?.split(":")[0]);
    const entrypoint = execForm(lines.findLast((line) => line.instruction === "ENTRYPOINT")?.rest ?? "");
    expect(entrypoint).toEqual(["/usr/bin/tini", "--"]);
    expect(lines.some((line) => line.instruction === "RUN" && /apt-get install [^&]*\btini\b/.test(line.rest))).toBe(true);
    const cmd = execForm(lines.findLast((line) => line.instruction === "CMD")?.rest ?? "");
    expect(cmd.slice(0, 2)).toEqual(["node_modules/.bin/wqueue", "worker"]);
    // The Deployment overrides CMD with args (keeping tini): the two must not drift apart.
    const [deployment] = ofKind("Deployment");
    expect(deployment?.spec.template.spec.containers[0].args).toEqual(cmd);
  });

  it("the Deployment outlasts the drain, and KEDA scales on a metric of this worker", () => {
    const [deployment] = ofKind("Deployment");
    const pod = deployment?.spec.template.spec;
    const args: string[] = pod.containers[0].args;
    expect(pod.terminationGracePeriodSeconds * 1000).toBeGreaterThan(Number(flag(args, "--shutdown-grace")));
    const port = Number(flag(args, "--http")?.split(":").at(-1));
    expect(pod.containers[0].ports).toContainEqual({ name: "http", containerPort: port });
    expect(deployment?.spec.template.metadata.annotations["prometheus.io/port"]).toBe(String(port));
    const [scaled] = ofKind("ScaledObject");
    expect(scaled?.spec.scaleTargetRef.name).toBe(deployment?.metadata.name);
    // With no replica, no worker reports the backlog and nothing would scale up again.
    expect(scaled?.spec.minReplicaCount).toBeGreaterThanOrEqual(1);
  });

  it("names only routes and metrics that a worker started with the Deployment's args serves", async () => {
    const [deployment] = ofKind("Deployment");
    const container = deployment?.spec.template.spec.containers[0];
    dir = tempDir();
    const app = writeApp(dir, "app.ts", `export const app = new WQueue();\napp.listenEvents("orders", () => {});`);
    // The manifest's own command line, with only the app's path and the listening address local.
    const args = [...(container.args as string[])].slice(1);
    args[args.indexOf("-a") + 1] = app;
    args[args.indexOf("--http") + 1] = "127.0.0.1:0";
    running = startCli(args, { env: { WQUEUE_BROKER_URL: `sqlite://${path.join(dir, "q.db")}`, WQUEUE_HTTP_TOKEN: TOKEN } });
    const line = await running.waitForLine("the http line", (l) => l.includes('"msg":"http: '));
    const base = `http://${JSON.parse(line).http}`;

    // Probes: the kubelet sends no token and an IP as Host.
    const probes = [container.livenessProbe, container.readinessProbe].map((probe) => probe.httpGet);
    expect(probes.map((get) => get.path)).toEqual(["/healthz", "/readyz"]);
    for (const get of probes) {
      expect(get.port).toBe(container.ports[0].name);
      await waitFor(`${get.path} to answer 200`, async () => (await fetch(`${base}${get.path}`)).status === 200, 15_000);
    }

    // Scrapes: the ServiceMonitor's endpoints (with the token) and the pod annotation's path.
    const scrapePaths = [
      ...ofKind("ServiceMonitor").flatMap((monitor) => monitor.spec.endpoints.map((endpoint: Doc) => endpoint.path)),
      deployment?.spec.template.metadata.annotations["prometheus.io/path"],
    ];
    let metrics = "";
    for (const scrapePath of scrapePaths) {
      const answer = await fetch(`${base}${scrapePath}`, { headers: { authorization: `Bearer ${TOKEN}` } });
      expect(answer.status, scrapePath).toBe(200);
      metrics = await answer.text();
    }

    // KEDA's query: every metric it names, with its label selector, is a series of this worker.
    for (const scaled of ofKind("ScaledObject")) {
      for (const trigger of scaled.spec.triggers) {
        expect(trigger.type).toBe("prometheus");
        const selectors = [...(trigger.metadata.query as string).matchAll(/(wqueue_\w+)\{([^}]*)\}/g)];
        expect(selectors.length).toBeGreaterThan(0);
        for (const [, name, labels] of selectors) {
          expect(metrics).toMatch(new RegExp(`^${name}\\{[^}]*${(labels ?? "").replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}[^}]*\\} \\d+`, "m"));
        }
      }
    }

    running.child.kill("SIGTERM");
    expect(await running.exited).toBe(0);
  });
});
