import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { WQueue } from "../app/WQueue.js";
import { AppLoadError } from "../errors.js";

const EXTENSIONS = [".ts", ".mts", ".js", ".mjs", ".cjs", ".cts"];
const TYPESCRIPT = /\.[mc]?ts$/;

/**
 * Finds and imports an app module. SPEC is a file path (`./app.ts`, extension optional), the seed's
 * dotted form (`example.example_usage` -> example/example_usage.ts), or a package name; `SPEC:name`
 * picks an export. The app is the export named by `:name`, else `app`, else the default export,
 * else the only WQueue among the exports. TypeScript loads through tsx, with no build step.
 */
export async function loadApp(spec: string, cwd = process.cwd()): Promise<{ app: WQueue; file: string }> {
  const [modulePart, exportName] = splitExport(spec);
  const file = resolveModule(modulePart, cwd);
  let exports: Record<string, unknown>;
  try {
    if (TYPESCRIPT.test(file)) {
      // tsImport, not a global register(): it also loads a .ts file that sits outside any
      // "type": "module" package, which a registered loader turns into a require() cycle.
      const { tsImport } = await import("tsx/esm/api");
      exports = (await tsImport(pathToFileURL(file).href, import.meta.url)) as Record<string, unknown>;
    } else {
      exports = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    }
  } catch (error) {
    throw new AppLoadError(`app module ${spec} failed to load: ${(error as Error).message}`, { cause: error });
  }
  const app = pickApp(exports, exportName);
  if (!app) {
    const what = exportName ? `no WQueue app named "${exportName}"` : "no WQueue app (export const app = new WQueue())";
    throw new AppLoadError(`app module ${spec} exports ${what}`);
  }
  return { app, file };
}

function splitExport(spec: string): [string, string | undefined] {
  const colon = spec.lastIndexOf(":");
  // A colon after the last path separator names an export (a drive letter or scheme does not).
  if (colon > 1 && colon > spec.lastIndexOf("/") && colon > spec.lastIndexOf("\\")) {
    return [spec.slice(0, colon), spec.slice(colon + 1)];
  }
  return [spec, undefined];
}

function resolveModule(spec: string, cwd: string): string {
  const tried: string[] = [];
  const asFile = (candidate: string): string | undefined => {
    const absolute = path.resolve(cwd, candidate);
    for (const option of [absolute, ...EXTENSIONS.map((ext) => absolute + ext)]) {
      tried.push(path.relative(cwd, option) || option);
      if (existsSync(option) && !option.endsWith(path.sep)) return option;
    }
    return undefined;
  };
  const looksLikePath = spec.startsWith(".") || spec.startsWith("/") || spec.includes("/") || spec.includes("\\");
  const direct = asFile(spec);
  if (direct) return direct;
  if (!looksLikePath && spec.includes(".")) {
    const dotted = asFile(spec.replaceAll(".", "/"));
    if (dotted) return dotted;
  }
  if (!looksLikePath) {
    try {
      return createRequire(path.join(cwd, "package.json")).resolve(spec);
    } catch {
      tried.push(`package "${spec}"`);
    }
  }
  throw new AppLoadError(`cannot find app module "${spec}" (tried ${tried.join(", ")})`);
}

function pickApp(exports: Record<string, unknown>, name: string | undefined): WQueue | undefined {
  if (name !== undefined) return WQueue.isApp(exports[name]) ? (exports[name] as WQueue) : undefined;
  for (const candidate of [exports.app, exports.default]) if (WQueue.isApp(candidate)) return candidate;
  const apps = Object.values(exports).filter(WQueue.isApp);
  return apps.length === 1 ? apps[0] : undefined;
}
