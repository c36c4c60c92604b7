import { describe, expect, it } from "vitest";
import { runCli } from "./run-cli.js";

describe("wqueue usage errors: one line, where to read more, exit 2", () => {
  const cases: [string[], RegExp, string][] = [
    [["wrker"], /^wqueue: unknown command 'wrker' \(did you mean worker\?\)$/, "see wqueue --help"],
    [["--bogus"], /^wqueue: unknown option '--bogus'$/, "see wqueue --help"],
    [["worker", "-a", "app.ts", "-c", "abc"], /^wqueue: option '-c, --concurrency <n>' argument 'abc' is invalid\. must be a whole number > 0$/, "see wqueue worker --help"],
    [["worker"], /^wqueue: required option '-a, --app <module>' not specified$/, "see wqueue worker --help"],
    [["worker", "-a", "app.ts", "--modle", "threads"], /^wqueue: unknown option '--modle' \(did you mean --model\?\)$/, "see wqueue worker --help"],
    [["push"], /^wqueue: missing required argument 'queue'$/, "see wqueue push --help"],
    [["dead-letters", "list"], /^wqueue: missing required argument 'queue'$/, "see wqueue dead-letters list --help"],
    [["stats", "--interval", "0"], /^wqueue: option '-i, --interval <ms>' argument '0' is invalid/, "see wqueue stats --help"],
  ];
  for (const [args, first, second] of cases) {
    it(`wqueue ${args.join(" ")}`, async () => {
      const result = await runCli(args);
      expect(result.code).toBe(2);
      expect(result.stdout).toBe("");
      const lines = result.stderr.trim().split("\n");
      expect(lines).toHaveLength(2);
      expect(lines[0]).toMatch(first);
      expect(lines[1]).toBe(second);
    });
  }

  it("--help and --version still print to stdout and exit 0", async () => {
    const help = await runCli(["worker", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: wqueue worker [options]");
    const version = await runCli(["--version"]);
    expect(version.code).toBe(0);
    expect(version.stdout).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
