/**
 * The dashboard's static files (GET /, /dashboard/dashboard.js, /dashboard/favicon.svg),
 * served from this folder with their content types and a Content-Security-Policy that lets
 * the page load nothing but its own origin: its script, its event stream, its icon. The
 * page's one inline <style> is allowed by its sha256, computed when the file is first read.
 */
import { contentSecurityPolicy, inlineStyleHashes } from "../http/csp.js";
import { readFile } from "node:fs/promises";
import type { ServerResponse } from "node:http";
import { fileURLToPath } from "node:url";

interface Asset {
  file: string;
  type: string;
}

const ASSETS: ReadonlyMap<string, Asset> = new Map([
  ["/", { file: "index.html", type: "text/html; charset=utf-8" }],
  ["/dashboard/dashboard.js", { file: "dashboard.js", type: "text/javascript; charset=utf-8" }],
  ["/dashboard/favicon.svg", { file: "favicon.svg", type: "image/svg+xml" }],
]);

const loaded = new Map<string, Promise<{ body: Buffer; csp: string }>>();

/** The paths this module serves (GET only). */
export const DASHBOARD_PATHS: readonly string[] = [...ASSETS.keys()];

/** Answers a GET for one of the dashboard's files. */
export async function serveDashboardAsset(res: ServerResponse, pathname: string): Promise<void> {
  const asset = ASSETS.get(pathname);
  if (!asset) throw new Error(`not a dashboard asset: ${pathname}`);
  let pending = loaded.get(asset.file);
  if (!pending) {
    pending = load(asset.file);
    loaded.set(asset.file, pending);
    // A failed read is retried on the next request rather than cached.
    pending.catch(() => loaded.delete(asset.file));
  }
  const { body, csp } = await pending;
  res.writeHead(200, {
    "content-type": asset.type,
    "content-length": body.byteLength,
    "content-security-policy": csp,
    "cache-control": "no-cache",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  });
  res.end(body);
}

async function load(file: string): Promise<{ body: Buffer; csp: string }> {
  const body = await readFile(fileURLToPath(new URL(file, import.meta.url)));
  const csp = contentSecurityPolicy({ styleHashes: inlineStyleHashes(body.toString("utf8")) });
  return { body, csp };
}
