/**
 * The Content-Security-Policy of the pages the coordinator serves (the dashboard and the join
 * page): everything from this origin only, no eval, inline styles only by their hashes.
 */
import { createHash } from "node:crypto";

/** CSP source expressions for the inline `<style>` blocks of an HTML page. */
export function inlineStyleHashes(html: string): string[] {
  return [...html.matchAll(/<style>([\s\S]*?)<\/style>/g)].map((m) => `'sha256-${createHash("sha256").update(m[1]!, "utf8").digest("base64")}'`);
}

/** The policy; `wasm` also allows compiling WebAssembly and starting workers from this origin. */
export function contentSecurityPolicy(opts: { styleHashes: readonly string[]; wasm?: boolean }): string {
  return [
    "default-src 'none'",
    // WebAssembly compilation needs 'wasm-unsafe-eval'; nothing here needs eval.
    opts.wasm ? "script-src 'self' 'wasm-unsafe-eval'" : "script-src 'self'",
    ...(opts.wasm ? ["worker-src 'self'"] : []),
    `style-src 'self'${opts.styleHashes.map((s) => ` ${s}`).join("")}`,
    "img-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}
