/**
 * GET /join: the page that turns a browser into a worker, and everything it loads: its two
 * scripts (built by join-bundle.ts), a tiny probe model, and onnxruntime-web's own scripts
 * and WebAssembly, read from node_modules/onnxruntime-web/dist. Only the files named here are served: a path is a
 * key in a table, never joined onto a directory, so nothing else on disk can be reached.
 *
 * Every response carries Cross-Origin-Opener-Policy: same-origin and
 * Cross-Origin-Embedder-Policy: require-corp, which make the page cross-origin isolated (in a
 * secure context): SharedArrayBuffer, hence multi-threaded WebAssembly. The page's workers
 * get the same headers, since a worker's isolation and CSP come from its own script's
 * response. Bodies are kept in memory once read, gzipped once for clients that accept it
 * (the WebAssembly shrinks from 14 MB to under 4 MB, which matters on a phone), and
 * revalidated with ETags.
 *
 * Also GET /api/join-qr.svg[?url=...]: a QR code (SVG) of the join URL, for the dashboard;
 * without `url` it encodes this coordinator's /join as the asking browser reached it.
 */
import { contentSecurityPolicy, inlineStyleHashes } from "../http/csp.js";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import path from "node:path";
import { promisify } from "node:util";
import { gzip as gzipCb } from "node:zlib";
import type { Logger } from "pino";
import QRCode from "qrcode";
import { z } from "zod";
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import { GraphBuilder } from "../../shared/onnx/builder.js";
import { BROWSER_SRC, loadJoinBundle, type JoinBundle } from "./bundle.js";

const gzip = promisify(gzipCb);

/** The onnxruntime-web files the engine may load: the two builds it chooses between and their runtimes. */
const ORT_FILES = [
  "ort.wasm.min.mjs",
  "ort-wasm-simd-threaded.mjs",
  "ort-wasm-simd-threaded.wasm",
  "ort.webgpu.min.mjs",
  "ort-wasm-simd-threaded.asyncify.mjs",
  "ort-wasm-simd-threaded.asyncify.wasm",
] as const;

const JS = "text/javascript; charset=utf-8";

type Source = { kind: "html" } | { kind: "probe" } | { kind: "bundle"; name: string } | { kind: "ort"; name: string };

/** The join QR code: under /api, beside the dashboard's other data, though public. */
const QR_PATH = "/api/join-qr.svg";

const ROUTES: ReadonlyMap<string, Source> = new Map<string, Source>([
  ["/join", { kind: "html" }],
  ["/join/", { kind: "html" }],
  ["/join/page.js", { kind: "bundle", name: "page.js" }],
  ["/join/engine.js", { kind: "bundle", name: "engine.js" }],
  ["/join/probe.onnx", { kind: "probe" }],
  ...ORT_FILES.map((f): [string, Source] => [`/join/ort/${f}`, { kind: "ort", name: f }]),
]);

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
  csp: string;
  gzipped: Promise<Buffer> | null;
}

const QrQuerySchema = z.object({
  url: z
    .string()
    .max(1024)
    .refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), "url must be an absolute http:// or https:// URL")
    .optional(),
});

/** A Host header worth echoing into a URL: a name or address and an optional port. */
const HOST = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:\d{1,5})?$/;

/**
 * The model the engine runs before it joins, to prove its backend computes: y = x · I with
 * x [1,4]. Built here because building ONNX in the page would need the protobuf library,
 * which generates code with eval.
 */
export function probeModel(): Uint8Array {
  const g = new GraphBuilder({ name: "edgepool-probe" });
  g.input("x", "float32", [1, 4]);
  const w = g.floats("w", [4, 4], new Float32Array([1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1]));
  g.op("MatMul", ["x", w], {}, "y");
  g.output("y", "float32", [1, 4]);
  return g.build();
}

export class JoinPage {
  private bundle: Promise<JoinBundle> | null = null;
  private readonly assets = new Map<string, Promise<Asset>>();
  private readonly ortDir: string;

  constructor(private readonly log: Logger) {
    // The package's CommonJS entry lives in dist/, beside the files served here.
    this.ortDir = path.dirname(createRequire(import.meta.url).resolve("onnxruntime-web"));
  }

  /** The paths this module answers (GET and HEAD). */
  readonly paths: readonly string[] = [...ROUTES.keys(), QR_PATH];

  /** Builds (or checks) the bundle now, so the first visitor does not wait; logs the outcome. */
  warm(): void {
    this.loadBundle().then(
      (b) => this.log.info({ built: b.built, ms: b.ms }, b.built ? "join page built" : "join page ready"),
      (err: unknown) => this.log.warn({ err: toEdgepoolError(err).message }, "join page unavailable"),
    );
  }

  async serve(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    if (url.pathname === QR_PATH) return this.serveQr(req, res, url);
    const source = ROUTES.get(url.pathname);
    if (!source) throw new EdgepoolError("E_NOT_FOUND", `no join asset ${url.pathname}`);
    if (url.pathname === "/join/") {
      // One canonical address, so relative links and bookmarks agree.
      res.writeHead(308, { location: `/join${url.search}` });
      res.end();
      return;
    }
    const asset = await this.asset(url.pathname, source);
    const headers: Record<string, string | number> = {
      "content-type": asset.type,
      etag: asset.etag,
      "cache-control": "no-cache",
      "cross-origin-opener-policy": "same-origin",
      "cross-origin-embedder-policy": "require-corp",
      "cross-origin-resource-policy": "same-origin",
      "content-security-policy": asset.csp,
      "x-content-type-options": "nosniff",
      "referrer-policy": "no-referrer",
      vary: "accept-encoding",
    };
    if (req.headers["if-none-match"] === asset.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    const acceptsGzip = /\bgzip\b/.test(String(req.headers["accept-encoding"] ?? ""));
    let body = asset.body;
    if (acceptsGzip && asset.body.byteLength > 1024) {
      asset.gzipped ??= gzip(asset.body, { level: 6 });
      body = await asset.gzipped;
      headers["content-encoding"] = "gzip";
    }
    headers["content-length"] = body.byteLength;
    res.writeHead(200, headers);
    res.end(req.method === "HEAD" ? undefined : body);
  }

  private loadBundle(): Promise<JoinBundle> {
    if (!this.bundle) {
      const p = loadJoinBundle();
      this.bundle = p;
      // A failed build is tried again on the next request rather than cached.
      p.catch(() => {
        if (this.bundle === p) this.bundle = null;
      });
    }
    return this.bundle;
  }

  private asset(key: string, source: Source): Promise<Asset> {
    let p = this.assets.get(key);
    if (!p) {
      p = this.read(source);
      this.assets.set(key, p);
      p.catch(() => this.assets.delete(key));
    }
    return p;
  }

  private async read(source: Source): Promise<Asset> {
    let body: Buffer;
    let type = JS;
    let styles: string[] = [];
    if (source.kind === "html") {
      body = await readFile(path.join(BROWSER_SRC, "join.html"));
      type = "text/html; charset=utf-8";
      styles = inlineStyleHashes(body.toString("utf8"));
    } else if (source.kind === "probe") {
      body = Buffer.from(probeModel());
      type = "application/octet-stream";
    } else if (source.kind === "bundle") {
      const b = await this.loadBundle();
      const file = b.files.get(source.name);
      if (!file) throw new EdgepoolError("E_INTERNAL", `the join bundle has no ${source.name}`);
      body = file;
    } else {
      try {
        body = await readFile(path.join(this.ortDir, source.name));
      } catch (err) {
        throw new EdgepoolError("E_NOT_FOUND", `onnxruntime-web's ${source.name} is missing from ${this.ortDir}; reinstall with npm ci`, { cause: err });
      }
      if (source.name.endsWith(".wasm")) type = "application/wasm";
    }
    const etag = `"${createHash("sha256").update(body).digest("base64url").slice(0, 27)}"`;
    return { body, type, etag, csp: contentSecurityPolicy({ styleHashes: styles, wasm: true }), gzipped: null };
  }

  private async serveQr(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const q = QrQuerySchema.safeParse({ url: url.searchParams.get("url") ?? undefined });
    if (!q.success) throw new EdgepoolError("E_BAD_REQUEST", `bad url parameter: ${q.error.issues[0]?.message ?? "invalid"}`);
    let target = q.data.url;
    if (!target) {
      const host = req.headers.host ?? "";
      if (!HOST.test(host)) throw new EdgepoolError("E_BAD_REQUEST", "no usable Host header; pass ?url=http://host:port/join");
      const tls = "encrypted" in req.socket && req.socket.encrypted === true;
      target = `${tls ? "https" : "http"}://${host}/join`;
    }
    const svg = await QRCode.toString(target, { type: "svg", margin: 2, errorCorrectionLevel: "M" });
    res.writeHead(200, {
      "content-type": "image/svg+xml",
      "content-length": Buffer.byteLength(svg),
      "cache-control": "no-cache",
      "x-content-type-options": "nosniff",
      "cross-origin-resource-policy": "same-origin",
    });
    res.end(req.method === "HEAD" ? undefined : svg);
  }
}
