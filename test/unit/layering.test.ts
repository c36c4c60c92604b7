import { execFile } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "../..");
const CONFIG = path.join(ROOT, ".dependency-cruiser.cjs");
const DEPCRUISE = path.join(ROOT, "node_modules/.bin/depcruise");

/** The violations dependency-cruiser reports for `src` and `bin` under `cwd`, one per line. */
async function violations(cwd: string): Promise<string[]> {
  const args = ["--config", CONFIG, "--output-type", "err", "src", "bin"];
  const { stdout } = await run(DEPCRUISE, args, { cwd }).catch((error: { stdout?: string }) => ({ stdout: error.stdout ?? "" }));
  return stdout
    .split("\n")
    .map((line) => line.trim())
    .filter((line) => line.startsWith("error"));
}

describe("layering (.dependency-cruiser.cjs, docs/architecture.md)", () => {
  const fixtures: string[] = [];
  afterAll(() => {
    for (const dir of fixtures) rmSync(dir, { recursive: true, force: true });
  });

  it("has no import from a lower layer to a higher one, nor between adapters", async () => {
    expect(await violations(ROOT)).toEqual([]);
  }, 120_000);

  it("reports an upward import, a cross-adapter import and an import of the CLI", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "wqueue-layering-"));
    fixtures.push(dir);
    const files: Record<string, string> = {
      "tsconfig.json": JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext" } }),
      "bin/wqueue.js": 'import "../src/cli/main.js";\n',
      "src/cli/main.ts": 'import "../worker/Worker.js";\n',
      "src/worker/Worker.ts": 'import "../pipeline/run.js";\n',
      "src/pipeline/run.ts": 'import "../worker/Worker.js";\nimport "../cli/main.js";\n',
      "src/brokers/contract.ts": "export {};\n",
      "src/brokers/alpha/AlphaBroker.ts": 'import "../beta/open-beta.js";\nimport "../contract.js";\n',
      "src/brokers/beta/open-beta.ts": 'import "../shared/connection.js";\n',
      "src/brokers/shared/connection.ts": "export {};\n",
    };
    for (const [file, text] of Object.entries(files)) {
      mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      writeFileSync(path.join(dir, file), text);
    }
    const found = await violations(dir);
    expect(found).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/layer:pipeline-not-to-app-worker: src\/pipeline\/run\.ts → src\/worker\/Worker\.ts/),
        expect.stringMatching(/layer:pipeline-not-to-entry: src\/pipeline\/run\.ts → src\/cli\/main\.ts/),
        expect.stringMatching(/cli-only-from-bin: src\/pipeline\/run\.ts → src\/cli\/main\.ts/),
        expect.stringMatching(/adapter-not-to-other-adapter: src\/brokers\/alpha\/AlphaBroker\.ts → src\/brokers\/beta\/open-beta\.ts/),
      ]),
    );
    // importing downward, the shared folder and the contract are allowed
    expect(found).toHaveLength(4);
  }, 120_000);
});
