import { writeFileSync } from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { describe, expect, it } from "vitest";
import { serializeError } from "../../src/errors.js";
import { tempDir } from "../cli/run-cli.js";

describe("serializeError", () => {
  it("shows a frame of a module tsx handed to Node as a data: URL as its file, not kilobytes of code", async () => {
    // A CommonJS .ts imported through tsx's ESM loader (as from an .mts app) runs from a data: URL.
    const dir = tempDir();
    const file = path.join(dir, "explode.ts");
    writeFileSync(file, `${"// padding\n".repeat(40)}export function explode(): never {\n  throw new Error("boom");\n}\n`);
    const { tsImport } = await import("tsx/esm/api");
    const module = (await tsImport(pathToFileURL(file).href, import.meta.url)) as { explode: () => never };
    let thrown: unknown;
    try {
      module.explode();
    } catch (error) {
      thrown = error;
    }
    const frames = (thrown as Error).stack?.split("\n") ?? [];
    // Node 20 runs such a module from a data: URL (the case at hand). Newer Node versions load it
    // from its file, with no such frame: the frame is then written as Node 20 writes it.
    if (!frames[1]?.includes("data:text/javascript,")) {
      const code = encodeURIComponent(`${"// padding\n".repeat(40)}function explode() { throw new Error("boom"); }`);
      frames[1] = `    at Module.explode (data:text/javascript,${code}?filePath=${encodeURIComponent(file)}:43:9)`;
      (thrown as Error).stack = frames.join("\n");
    }
    const { stack } = serializeError(thrown);
    const [, frame] = stack?.split("\n") ?? [];
    expect(frame).toMatch(new RegExp(`^ {4}at .*\\(tsx-compiled:${file.replaceAll(".", "\\.")}:\\d+:\\d+\\)$`));
    expect(stack?.length).toBeLessThan(2048);
  });

  it("leaves ordinary frames alone", () => {
    const error = new Error("plain");
    expect(serializeError(error).stack).toBe(error.stack?.split("\n").slice(0, 12).join("\n"));
  });
});
