import { ConfigError } from "../errors.js";

type CronerModule = typeof import("croner");

/**
 * croner, the cron parser, is an optional peer dependency: loaded only when the app has cron
 * jobs, and a missing one is one ConfigError naming the package.
 */
export async function loadCroner(): Promise<CronerModule> {
  try {
    return await import("croner");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") {
      throw new ConfigError("app.cron needs the package croner, not installed: npm i croner");
    }
    throw error;
  }
}
