/**
 * prom-client, the Prometheus client behind `/metrics`, is an optional peer dependency: a worker
 * without it serves the dashboard, `/api/stats` and the health routes, and `/metrics` answers 501
 * saying what to install. Loaded only by a worker started with `--http`.
 */
export type PromClient = typeof import("prom-client");

export const PROM_CLIENT_MISSING = "/metrics needs the package prom-client, not installed: npm i prom-client";

/** The prom-client module, or undefined when it is not installed (any other failure is thrown). */
export async function loadPromClient(): Promise<PromClient | undefined> {
  try {
    return await import("prom-client");
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    const missing = (code === "ERR_MODULE_NOT_FOUND" || code === "MODULE_NOT_FOUND") && message.includes("prom-client");
    if (missing) return undefined;
    throw error;
  }
}
