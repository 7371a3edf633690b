/**
 * Models on disk, by content hash. A model is fetched once over HTTP from the coordinator
 * (`GET <origin><modelPath>/<sha256>`), its sha256 checked, and kept as
 * `<dir>/<sha256>.onnx` (written to a temporary name and renamed, so a crash never leaves a
 * torn file under the real name). Cached files are hashed again when read: a disk that rots
 * or a hand-edited file is caught before ONNX Runtime sees it. Concurrent requests for the
 * same model share one download.
 */
import { readBodyCapped } from "../shared/read-body.js";
import { createHash, randomUUID } from "node:crypto";
import { mkdir, readFile, rename, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { EdgepoolError, toEdgepoolError } from "../shared/errors.js";
import { httpRequest } from "../shared/node/http-request.js";
import { tlsError } from "../shared/node/tls.js";
import { authHeader } from "../shared/token.js";

const SHA256 = /^[0-9a-f]{64}$/;

/** ONNX files are protobufs, which cannot exceed 2 GiB. */
const DEFAULT_MAX_BYTES = 2 ** 31;

export interface ModelCacheOptions {
  /** Directory holding `<sha256>.onnx` files; created on first use. */
  dir: string;
  downloadTimeoutMs: number;
  log: Logger;
  maxBytes?: number;
  /** Worker token for a coordinator started with tokens (models are served to workers only). */
  token?: string | undefined;
  /** CA certificates (PEM) to trust for https, besides Node's own. */
  ca?: string | undefined;
}

/**
 * The HTTP base for model downloads: the coordinator's WebSocket origin with ws→http and
 * wss→https (same host and port), followed by the `modelPath` the coordinator announced.
 */
export function modelBaseUrl(coordinatorUrl: string, modelPath: string): string {
  const url = new URL(coordinatorUrl);
  if (url.protocol === "ws:") url.protocol = "http:";
  else if (url.protocol === "wss:") url.protocol = "https:";
  else if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new EdgepoolError("E_CONFIG", `coordinator URL ${coordinatorUrl} is not ws://, wss://, http:// or https://`);
  }
  const rel = modelPath.replace(/\/+$/, "");
  return `${url.origin}${rel.startsWith("/") || rel === "" ? rel : `/${rel}`}`;
}

/** Lowercase hex sha256 of the bytes. */
export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

function errnoCode(err: unknown): string | undefined {
  return typeof err === "object" && err !== null && "code" in err && typeof err.code === "string" ? err.code : undefined;
}

export class ModelCache {
  private readonly pending = new Map<string, Promise<Uint8Array>>();
  /** Aborts every download in flight when the cache closes. */
  private readonly closing = new AbortController();
  private readonly maxBytes: number;

  constructor(private readonly opts: ModelCacheOptions) {
    this.maxBytes = opts.maxBytes ?? DEFAULT_MAX_BYTES;
  }

  /** Where the model with this hash lives (or will live) on disk. */
  pathOf(sha256: string): string {
    return path.join(this.opts.dir, `${sha256}.onnx`);
  }

  /** The verified bytes of model `sha256`, from disk or downloaded from `baseUrl`. */
  get(sha256: string, baseUrl: string): Promise<Uint8Array> {
    // The hash becomes a file name: anything but 64 hex digits could walk out of the cache.
    if (!SHA256.test(sha256)) return Promise.reject(new EdgepoolError("E_BAD_REQUEST", `'${sha256}' is not a lowercase hex sha256`));
    if (this.closing.signal.aborted) return Promise.reject(new EdgepoolError("E_CANCELLED", "the model cache is closed"));
    let p = this.pending.get(sha256);
    if (!p) {
      p = this.load(sha256, baseUrl).finally(() => this.pending.delete(sha256));
      this.pending.set(sha256, p);
    }
    return p;
  }

  /** Aborts downloads in flight; later `get` calls fail with E_CANCELLED. Safe to call twice. */
  close(): void {
    if (!this.closing.signal.aborted) this.closing.abort(new EdgepoolError("E_CANCELLED", "the model cache is closed"));
  }

  private async load(sha256: string, baseUrl: string): Promise<Uint8Array> {
    const cached = await this.readCached(sha256);
    if (cached) return cached;
    const bytes = await this.download(sha256, baseUrl);
    await this.store(sha256, bytes);
    return bytes;
  }

  private async readCached(sha256: string): Promise<Uint8Array | undefined> {
    const file = this.pathOf(sha256);
    let bytes: Uint8Array;
    try {
      bytes = await readFile(file);
    } catch (err) {
      if (errnoCode(err) === "ENOENT") return undefined;
      throw new EdgepoolError("E_IO", `cannot read cached model ${file}: ${toEdgepoolError(err).message}`, { cause: err });
    }
    if (sha256Hex(bytes) === sha256) {
      this.opts.log.debug({ model: sha256, bytes: bytes.byteLength }, "model from cache");
      return bytes;
    }
    this.opts.log.warn({ model: sha256, file }, "cached model does not match its hash; downloading it again");
    await unlink(file).catch(() => undefined);
    return undefined;
  }

  private async download(sha256: string, baseUrl: string): Promise<Uint8Array> {
    const url = `${baseUrl}/${sha256}`;
    const started = performance.now();
    const timeout = AbortSignal.timeout(this.opts.downloadTimeoutMs);
    const signal = AbortSignal.any([timeout, this.closing.signal]);
    let bytes: Uint8Array;
    try {
      const res = await httpRequest(url, { signal, headers: authHeader(this.opts.token), ...(this.opts.ca ? { ca: this.opts.ca } : {}) });
      if (!res.ok) {
        await res.body?.cancel().catch(() => undefined);
        if (res.status === 401 || res.status === 403) {
          throw new EdgepoolError(res.status === 401 ? "E_AUTH" : "E_FORBIDDEN", `GET ${url} answered HTTP ${res.status}: models are served to workers with a worker token; pass it with --token or EDGEPOOL_TOKEN`);
        }
        throw new EdgepoolError("E_MODEL_LOAD", `GET ${url} answered HTTP ${res.status}; the coordinator does not serve model ${sha256}`);
      }
      bytes = await readBodyCapped(res, this.maxBytes, `model ${sha256}`, "this worker");
    } catch (err) {
      if (this.closing.signal.aborted) throw new EdgepoolError("E_CANCELLED", `download of model ${sha256} stopped: the worker is closing`, { cause: err });
      if (timeout.aborted) {
        throw new EdgepoolError("E_TIMEOUT", `downloading model ${sha256} from ${url} took longer than ${this.opts.downloadTimeoutMs} ms`, { cause: err });
      }
      if (err instanceof EdgepoolError) throw err;
      const tls = tlsError(err, url);
      if (tls) throw tls;
      throw new EdgepoolError("E_MODEL_LOAD", `cannot download model ${sha256} from ${url}: ${toEdgepoolError(err).message}`, { cause: err });
    }
    const actual = sha256Hex(bytes);
    if (actual !== sha256) {
      throw new EdgepoolError("E_MODEL_HASH", `model downloaded from ${url} has sha256 ${actual}, not ${sha256}; not using it`);
    }
    this.opts.log.info({ model: sha256, bytes: bytes.byteLength, ms: Math.round(performance.now() - started) }, "model downloaded");
    return bytes;
  }

  private async store(sha256: string, bytes: Uint8Array): Promise<void> {
    const file = this.pathOf(sha256);
    const tmp = `${file}.${process.pid}.${randomUUID()}.tmp`;
    try {
      await mkdir(this.opts.dir, { recursive: true });
      await writeFile(tmp, bytes);
      await rename(tmp, file);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      // The bytes are verified and in memory: a full or read-only disk costs a download next
      // time, not this shard.
      this.opts.log.warn({ model: sha256, file, err: toEdgepoolError(err).message }, "cannot store model in the cache");
    }
  }
}
