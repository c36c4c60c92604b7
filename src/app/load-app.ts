import { existsSync, readFileSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { WQueue } from "./WQueue.js";
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
    if (TYPESCRIPT.test(file) && isCommonJs(file)) {
      // tsx's require, not tsImport: through the ESM loader, tsx hands a CommonJS module to Node
      // as a `data:text/javascript,<whole module>` URL, so every stack frame named that URL (3 KB
      // per frame) at positions of the compiled code. Required, it compiles under its own file
      // name and Node maps the frames back to `app.ts:LINE:COL` through tsx's inline source map.
      const { require: tsxRequire } = await import("tsx/cjs/api");
      exports = tsxRequire(file, import.meta.url) as Record<string, unknown>;
    } else if (TYPESCRIPT.test(file)) {
      // tsImport, not a global register(): a registered loader turns the tsx-compiled modules
      // of a CommonJS package that the app imports into a require() cycle.
      const { tsImport } = await import("tsx/esm/api");
      exports = (await tsImport(pathToFileURL(file).href, import.meta.url)) as Record<string, unknown>;
    } else {
      exports = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
    }
  } catch (error) {
    throw new AppLoadError(`app module ${spec} failed to load: ${loadFailure(error, file)}`, { cause: error });
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

/**
 * Looks for SPEC relative to `cwd`: as written, or with one of EXTENSIONS when it has none; in the
 * seed's dotted form; as a package. When nothing is there, the error names the directory and only
 * the tries a user could have meant (not `app.ts.ts`).
 */
function resolveModule(spec: string, cwd: string): string {
  const hasExtension = EXTENSIONS.includes(path.extname(spec));
  const looksLikePath = spec.startsWith(".") || spec.startsWith("/") || spec.includes("/") || spec.includes("\\");
  const bases = [spec];
  if (!looksLikePath && !hasExtension && spec.includes(".")) bases.push(spec.replaceAll(".", "/"));
  for (const base of bases) {
    const absolute = path.resolve(cwd, base);
    const options = hasExtension ? [absolute] : [absolute, ...EXTENSIONS.map((ext) => absolute + ext)];
    const found = options.find(isFile);
    if (found) return found;
  }
  const asPackage = !looksLikePath && !hasExtension;
  if (asPackage) {
    try {
      return createRequire(path.join(cwd, "package.json")).resolve(spec);
    } catch {
      // reported below with the files
    }
  }
  const shown = (base: string) => (path.isAbsolute(base) ? base : path.relative(cwd, path.resolve(cwd, base)) || base);
  const files = bases.map((base) =>
    hasExtension ? shown(base) : `${shown(base)}${EXTENSIONS[0]} (or ${EXTENSIONS.slice(1).join(", ")})`,
  );
  const where = looksLikePath && path.isAbsolute(spec) ? "" : ` relative to the current directory ${cwd}`;
  const pkg = asPackage ? `, and no package "${spec}"` : "";
  throw new AppLoadError(`cannot find app module "${spec}"${where}: no file ${files.join(" nor ")}${pkg}`);
}

function isFile(file: string): boolean {
  return statSync(file, { throwIfNoEntry: false })?.isFile() === true;
}

/**
 * The loader's error on one line. tsx compiles `x.mts` / `x.cts` under the name `x.ts`, so a syntax
 * error there names `x.ts`: it gets its real name back (the app file's own first).
 */
function loadFailure(error: unknown, file: string): string {
  const message = error instanceof Error ? error.message : String(error);
  const renamed = message.replace(/(\S+)\.ts(?=:\d+:\d+)/g, (named, stem: string) => {
    if (/\.[mc]ts$/.test(file) && file.slice(0, -4) === stem) return file;
    if (existsSync(named)) return named;
    return [`${stem}.mts`, `${stem}.cts`].find((real) => existsSync(real)) ?? named;
  });
  return renamed
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean)
    .join(" ");
}

/** Node's rule: `.cts` is CommonJS, `.mts` is not, `.ts` follows the nearest package.json's "type". */
function isCommonJs(file: string): boolean {
  if (file.endsWith(".cts")) return true;
  if (file.endsWith(".mts")) return false;
  for (let dir = path.dirname(file); ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, "package.json");
    if (existsSync(manifest)) return packageType(manifest) !== "module";
    if (path.dirname(dir) === dir) return true;
  }
}

function packageType(manifest: string): unknown {
  try {
    return (JSON.parse(readFileSync(manifest, "utf8")) as { type?: unknown }).type;
  } catch {
    return undefined; // an unreadable package.json: let the loader report it
  }
}

function pickApp(exports: Record<string, unknown>, name: string | undefined): WQueue | undefined {
  if (name !== undefined) return WQueue.isApp(exports[name]) ? (exports[name] as WQueue) : undefined;
  for (const candidate of [exports.app, exports.default]) if (WQueue.isApp(candidate)) return candidate;
  const apps = Object.values(exports).filter(WQueue.isApp);
  return apps.length === 1 ? apps[0] : undefined;
}
