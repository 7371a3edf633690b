/**
 * Where a phone can reach the join page, and the terminal banner that says so. A coordinator
 * on a wildcard host (0.0.0.0, ::) is reachable at every non-internal IPv4 address of this
 * machine; one on a loopback address only from this machine (no QR code: a phone could not
 * use it); one on a specific address at that address.
 */
import os from "node:os";
import QRCode from "qrcode";

export interface JoinUrl {
  url: string;
  /** False for loopback URLs: a QR code would send a phone to itself. */
  reachableFromOtherDevices: boolean;
}

type Interfaces = ReturnType<typeof os.networkInterfaces>;

function isLoopback(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\./.test(host);
}

function hostPart(host: string): string {
  return host.includes(":") ? `[${host}]` : host;
}

/** The join URLs for a coordinator listening on `host`:`port` (over https when `tls`). */
export function joinUrls(host: string, port: number, opts: { tls: boolean }, interfaces: Interfaces = os.networkInterfaces()): JoinUrl[] {
  const scheme = opts.tls ? "https" : "http";
  if (host === "0.0.0.0" || host === "::" || host === "") {
    const out: JoinUrl[] = [];
    for (const addrs of Object.values(interfaces)) {
      for (const a of addrs ?? []) {
        if (a.family === "IPv4" && !a.internal) out.push({ url: `${scheme}://${a.address}:${port}/join`, reachableFromOtherDevices: true });
      }
    }
    if (out.length > 0) return out;
    return [{ url: `${scheme}://127.0.0.1:${port}/join`, reachableFromOtherDevices: false }];
  }
  if (isLoopback(host)) return [{ url: `${scheme}://${hostPart(host)}:${port}/join`, reachableFromOtherDevices: false }];
  return [{ url: `${scheme}://${hostPart(host)}:${port}/join`, reachableFromOtherDevices: true }];
}

/**
 * Lines for the terminal: each join URL, with a QR code for those other devices can reach.
 * With `tokenRequired`, the QR codes cannot carry the token (this process keeps only its
 * digest), so the banner says how to add one.
 */
export async function joinBanner(urls: readonly JoinUrl[], opts: { tokenRequired: boolean }): Promise<string> {
  const parts: string[] = [];
  if (opts.tokenRequired) parts.push("this pool requires a worker token: open the join URL with #token=<worker token> appended\n");
  for (const u of urls) {
    if (!u.reachableFromOtherDevices) {
      parts.push(`join from a browser on this machine: ${u.url} (listening on loopback only; --host 0.0.0.0 lets phones join)\n`);
      continue;
    }
    parts.push(`join from a phone or any browser: ${u.url}\n`);
    parts.push(await QRCode.toString(u.url, { type: "terminal", small: true }));
  }
  return parts.join("");
}
