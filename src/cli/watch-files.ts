import { type FSWatcher, readdirSync, watch } from "node:fs";
import path from "node:path";
import { nearestPackageJson } from "./nearest-package-json.js";

/** Directories never watched: dependencies, builds, VCS data. */
const IGNORED_DIRS = new Set(["node_modules", ".git", "dist", "build", "coverage"]);
/** Only source files trigger a reload (not the SQLite broker's wqueue.db, logs, ...). */
const SOURCE = /\.(?:[mc]?[jt]s|[jt]sx|json)$/;

/**
 * The directory to watch for an app module: the nearest one holding a package.json (the project,
 * so imports from sibling folders count), else the module's own directory.
 */
export function watchRoot(appFile: string): string {
  return path.dirname(nearestPackageJson(appFile) ?? appFile);
}

/**
 * Calls `onChange(file)` (debounced: once per burst of saves) when a source file under `root`
 * changes. Each top-level folder is watched recursively except the IGNORED_DIRS, so a project's
 * node_modules costs no inotify watches (a top-level folder created later is not watched).
 * Returns a function that stops watching.
 */
export function watchSourceFiles(root: string, onChange: (file: string) => void, debounceMs = 150): () => void {
  const watchers: FSWatcher[] = [];
  let timer: NodeJS.Timeout | undefined;
  let changed: string | undefined;
  const report = (dir: string) => (_event: string, name: string | Buffer | null) => {
    if (name === null) return;
    const relative = path.relative(root, path.join(dir, name.toString()));
    if (!SOURCE.test(relative) || relative.split(path.sep).some((part) => IGNORED_DIRS.has(part))) return;
    changed ??= relative;
    clearTimeout(timer);
    timer = setTimeout(() => {
      const file = changed as string;
      changed = undefined;
      onChange(file);
    }, debounceMs);
  };
  watchers.push(watch(root, report(root)));
  for (const entry of readdirSync(root, { withFileTypes: true })) {
    if (entry.isDirectory() && !IGNORED_DIRS.has(entry.name) && !entry.name.startsWith(".")) {
      const dir = path.join(root, entry.name);
      watchers.push(watch(dir, { recursive: true }, report(dir)));
    }
  }
  return () => {
    clearTimeout(timer);
    for (const watcher of watchers) watcher.close();
  };
}
