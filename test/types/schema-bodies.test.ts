import { execFile } from "node:child_process";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { expect, test } from "vitest";

const tsc = createRequire(import.meta.url).resolve("typescript/bin/tsc");
const project = fileURLToPath(new URL("./tsconfig.json", import.meta.url));

// The fixtures hold expectTypeOf checks and @ts-expect-error lines: tsc fails if a schema's output
// type stops reaching message.body (unknown: property errors; any: unused @ts-expect-error).
test("message.body takes the schema's output type (tsc on test/types/*.fixture.ts)", async () => {
  const result = await promisify(execFile)(process.execPath, [tsc, "--noEmit", "-p", project]).catch(
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
  expect(`${result.stdout}${result.stderr}`).toBe("");
}, 120_000);
