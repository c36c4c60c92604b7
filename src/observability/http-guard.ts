import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";

/** The header every state-changing request must carry; the dashboard's own fetches send it. */
export const REQUEST_HEADER = "x-wqueue-request";

/** The hostname of a Host or Origin authority ("name:port", "[v6]:port"), lower-case; undefined if unparsable. */
function hostOf(authority: string): { hostname: string; host: string } | undefined {
  try {
    const url = new URL(`http://${authority}`);
    return url.username || url.password || url.pathname !== "/" ? undefined : { hostname: url.hostname, host: url.host };
  } catch {
    return undefined;
  }
}

/** Normalises `--http-allowed-hosts` names ("Svc.NS", "name:port") to lower-case hostnames. */
export function allowedHostnames(names: readonly string[]): Set<string> {
  return new Set(names.map((name) => hostOf(name.trim())?.hostname ?? name.trim().toLowerCase()).filter(Boolean));
}

/**
 * Why this request must be refused, or undefined to serve it. Two attacks from a web page in a
 * browser on the worker's host:
 * - DNS rebinding: the attacker's name resolves to 127.0.0.1, so the browser sends `Host:
 *   evil.example`. Only IP literals (a browser sends one only when the page itself came from that
 *   address, as a kubelet probe or a Prometheus scrape of a pod IP does), `localhost` and the
 *   `--http-allowed-hosts` names are served.
 * - Cross-site request forgery: a form or fetch from another origin POSTs a replay. Every method
 *   but GET/HEAD needs the X-WQueue-Request header (a cross-origin request can only send it after
 *   a CORS preflight, which this server never grants) and must not come from another origin
 *   (Origin / Sec-Fetch-Site, where the browser gives them).
 */
export function refusal(request: IncomingMessage, allowed: ReadonlySet<string>): string | undefined {
  const hostHeader = request.headers.host;
  const host = hostHeader === undefined ? undefined : hostOf(hostHeader);
  if (hostHeader !== undefined) {
    const hostname = host?.hostname;
    const literal = hostname !== undefined && isIP(hostname.replace(/^\[|\]$/g, "")) !== 0;
    if (!hostname || !(literal || hostname === "localhost" || allowed.has(hostname))) {
      return `Host ${hostHeader} is not this worker's address; name it with --http-allowed-hosts to serve it`;
    }
  }
  if (request.method === "GET" || request.method === "HEAD") return undefined;
  const origin = request.headers.origin;
  if (origin !== undefined && (origin === "null" || hostOf(origin.replace(/^[a-z][a-z0-9+.-]*:\/\//i, ""))?.host !== host?.host)) {
    return `origin ${origin} may not change this worker's state`;
  }
  const site = request.headers["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin" && site !== "none") return `a ${site} request may not change this worker's state`;
  if (!request.headers[REQUEST_HEADER]) return "a request that changes state needs the X-WQueue-Request header (the dashboard sends it)";
  return undefined;
}
