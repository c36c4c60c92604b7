import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

/**
 * Where a thread or child process finds one of this folder's entry scripts (`thread-entry`,
 * `sandbox-entry`): the compiled `.js` beside this file, or, when wqueue itself runs from its
 * TypeScript sources (its own tests), the `.ts` with tsx loaded into the new thread or process.
 */
export function runnerEntry(name: string): { filename: string; execArgv?: string[] } {
  const fromSource = import.meta.url.endsWith(".ts");
  const filename = new URL(fromSource ? `./${name}.ts` : `./${name}.js`, import.meta.url).href;
  if (!fromSource) return { filename };
  const tsx = pathToFileURL(createRequire(import.meta.url).resolve("tsx")).href;
  const hasTsx = process.execArgv.some((arg) => arg.includes("tsx"));
  return { filename, execArgv: hasTsx ? [...process.execArgv] : [...process.execArgv, "--import", tsx] };
}
