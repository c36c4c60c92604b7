import { rmSync } from "node:fs";
import { afterAll } from "vitest";
import { tempDir } from "./run-cli.js";

/** A tempDir() whose folders (SQLite files, outputs) are removed after the calling file's tests. */
export function tempDirsRemovedAfterAll(): () => string {
  const dirs: string[] = [];
  afterAll(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });
  return () => {
    const dir = tempDir();
    dirs.push(dir);
    return dir;
  };
}
