import { existsSync } from "node:fs";
import path from "node:path";

/** The path of the package.json nearest above `file` (its project), or undefined outside any. */
export function nearestPackageJson(file: string): string | undefined {
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, "package.json");
    if (existsSync(manifest)) return manifest;
    if (path.dirname(dir) === dir) return undefined;
  }
}
