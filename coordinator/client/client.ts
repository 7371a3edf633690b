/**
 * The client SDK: what `submit`, `status` and tests use to talk to a coordinator over HTTP.
 * Every response is parsed with zod, with the very schemas the coordinator's views are typed
 * by (coordinator/api/); HTTP errors come back as EdgepoolError with the
 * coordinator's code and message; an unreachable coordinator is E_UNAVAILABLE.
 */
import { createReadStream, createWriteStream } from "node:fs";
import { rename, rm } from "node:fs/promises";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { z } from "zod";
import { EdgepoolError, isErrorCode, toEdgepoolError } from "../../shared/errors.js";
import { httpRequest, httpRequestBytes, type BytesResponse, type HttpRequestOptions } from "../../shared/node/http-request.js";
import { authHeader } from "../../shared/token.js";
import { tlsError } from "../../shared/node/tls.js";
import { ReportDataSchema } from "../report/report-data.js";
import { FRAME_MEDIA_TYPE, decodeFrame, encodeFrame, type NamedTensor } from "../../shared/protocol/frame.js";
import { ErrorBodySchema } from "../api/errors.js";
import { type CreateJobRequest, InlineAnswerHeaderSchema, type InlineJobSpec, type JobView, JobViewSchema } from "../api/jobs.js";
import { ModelViewSchema } from "../api/models.js";
import { HealthViewSchema, StatusViewSchema } from "../api/status.js";
import { UploadViewSchema } from "../api/uploads.js";

export { JobViewSchema, type JobView, type CreateJobRequest, type InlineJobSpec } from "../api/jobs.js";
export { ModelViewSchema, type ModelView } from "../api/models.js";
export { HealthViewSchema, StatusViewSchema, type HealthView, type StatusView } from "../api/status.js";
export { UploadViewSchema, type UploadView } from "../api/uploads.js";
export { WorkerViewSchema, type WorkerView } from "../api/workers.js";

const TERMINAL = new Set(["done", "failed", "cancelled"]);

/** Turns ws:// into http:// (and wss:// into https://) so either form can be given. */
export function httpBase(url: string): string {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new EdgepoolError("E_CONFIG", `'${url}' is not a URL; give the coordinator as http://host:port`);
  }
  if (u.protocol === "ws:") u.protocol = "http:";
  else if (u.protocol === "wss:") u.protocol = "https:";
  else if (u.protocol !== "http:" && u.protocol !== "https:") {
    throw new EdgepoolError("E_CONFIG", `'${url}' must start with http://, https://, ws:// or wss://`);
  }
  return u.origin;
}

export interface ClientOptions {
  /** Default time limit of one request (ms); uploads and downloads have longer ones. */
  timeoutMs?: number;
  /** A client or admin token, sent as `Authorization: Bearer` with every request. */
  token?: string;
  /** CA certificates (PEM) to trust besides Node's own, for a coordinator with a self-signed certificate. */
  ca?: string;
}

type RequestSpec = Pick<HttpRequestOptions, "method" | "headers" | "body" | "signal">;

export class CoordinatorClient {
  readonly base: string;
  private readonly timeoutMs: number;
  private readonly token: string | undefined;
  private readonly ca: string | undefined;

  /** `options` may be a bare number: the default request timeout, as before. */
  constructor(url: string, options: number | ClientOptions = {}) {
    this.base = httpBase(url);
    const o = typeof options === "number" ? { timeoutMs: options } : options;
    this.timeoutMs = o.timeoutMs ?? 30_000;
    this.token = o.token;
    this.ca = o.ca;
  }

  private async request(path: string, init: RequestSpec = {}, timeoutMs = this.timeoutMs): Promise<Response> {
    let res: Response;
    try {
      res = await httpRequest(`${this.base}${path}`, {
        ...init,
        headers: { ...init.headers, ...authHeader(this.token) },
        signal: init.signal ?? AbortSignal.timeout(timeoutMs),
        ...(this.ca ? { ca: this.ca } : {}),
      });
    } catch (err) {
      throw this.unreachable(err);
    }
    if (!res.ok) throw this.refusal(res.status, await res.text(), init.method ?? "GET", path);
    return res;
  }

  /** A request whose body and answer are small and whole (no streams): see httpRequestBytes. */
  private async requestBytes(path: string, init: { method: string; headers: Record<string, string>; body: Uint8Array }, timeoutMs: number): Promise<BytesResponse> {
    let res: BytesResponse;
    try {
      res = await httpRequestBytes(`${this.base}${path}`, { ...init, headers: { ...init.headers, ...authHeader(this.token) }, timeoutMs, ...(this.ca ? { ca: this.ca } : {}) });
    } catch (err) {
      throw this.unreachable(err);
    }
    if (res.status < 200 || res.status > 299) throw this.refusal(res.status, res.body.toString("utf8"), init.method, path);
    return res;
  }

  private unreachable(err: unknown): EdgepoolError {
    const tls = tlsError(err, this.base);
    if (tls) return tls;
    const cause = err instanceof Error ? ((err.cause as Error | undefined)?.message ?? err.message) : String(err);
    return new EdgepoolError("E_UNAVAILABLE", `cannot reach the coordinator at ${this.base} (${cause}); check the URL and that 'edgepool coordinator' runs there`, { cause: err });
  }

  /** The error for a non-2xx answer: the coordinator's own code and message when it sent them. */
  private refusal(status: number, text: string, method: string, path: string): EdgepoolError {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const body = ErrorBodySchema.safeParse(parsed);
    if (body.success) {
      const code = isErrorCode(body.data.error.code) ? body.data.error.code : "E_INTERNAL";
      return new EdgepoolError(code, body.data.error.message);
    }
    const code = status === 401 ? "E_AUTH" : status === 403 ? "E_FORBIDDEN" : "E_INTERNAL";
    return new EdgepoolError(code, `coordinator answered HTTP ${status} to ${method} ${path}: ${text.slice(0, 200)}`);
  }

  private async json<T>(schema: z.ZodType<T>, path: string, init?: RequestSpec, timeoutMs?: number): Promise<T> {
    const res = await this.request(path, init, timeoutMs);
    const r = schema.safeParse(await res.json());
    if (!r.success) throw new EdgepoolError("E_PROTOCOL", `unexpected answer from ${path}: ${r.error.issues[0]?.message ?? ""}; are client and coordinator the same version?`);
    return r.data;
  }

  health() {
    return this.json(HealthViewSchema, "/api/health", {}, 5000);
  }

  uploadModel(bytes: Uint8Array) {
    return this.json(ModelViewSchema, "/api/models", { method: "POST", body: bytes, headers: { "content-type": "application/octet-stream" } }, 600_000);
  }

  /** Streams an .npy file to the coordinator; returns its upload id. */
  uploadNpy(file: string) {
    return this.json(
      UploadViewSchema,
      "/api/uploads",
      { method: "POST", body: createReadStream(file), headers: { "content-type": "application/octet-stream" } },
      3_600_000,
    );
  }

  createJob(req: CreateJobRequest) {
    return this.json(JobViewSchema, "/api/jobs", { method: "POST", body: JSON.stringify(req), headers: { "content-type": "application/json" } });
  }

  /**
   * Creates a job in one request, its inputs inline (they must fit in one frame: the
   * coordinator's --max-frame-mb). With `waitMs`, the answer waits up to that long for the
   * job to end and then carries its outputs; otherwise, or if it is not done in time,
   * `outputs` is null and they are downloaded once it is done, as for any job.
   */
  async createInlineJob(spec: InlineJobSpec, inputs: readonly NamedTensor[], waitMs = 0): Promise<{ job: JobView; outputs: NamedTensor[] | null }> {
    const path = `/api/jobs${waitMs > 0 ? `?wait=${waitMs}` : ""}`;
    const res = await this.requestBytes(path, { method: "POST", body: encodeFrame({ ...spec }, inputs), headers: { "content-type": FRAME_MEDIA_TYPE } }, this.timeoutMs + waitMs);
    const unexpected = (why: string) => new EdgepoolError("E_PROTOCOL", `unexpected answer from ${path}: ${why}; are client and coordinator the same version?`);
    if ((res.headers["content-type"] ?? "").split(";")[0] !== FRAME_MEDIA_TYPE) {
      let json: unknown;
      try {
        json = JSON.parse(res.body.toString("utf8"));
      } catch {
        throw unexpected("not JSON");
      }
      const view = JobViewSchema.safeParse(json);
      if (!view.success) throw unexpected(view.error.issues[0]?.message ?? "");
      return { job: view.data, outputs: null };
    }
    let frame: ReturnType<typeof decodeFrame>;
    try {
      frame = decodeFrame(new Uint8Array(res.body.buffer, res.body.byteOffset, res.body.byteLength));
    } catch (err) {
      throw unexpected(toEdgepoolError(err).message);
    }
    const header = InlineAnswerHeaderSchema.safeParse(frame.header);
    if (!header.success) throw unexpected(header.error.issues[0]?.message ?? "");
    return { job: header.data.job, outputs: frame.tensors };
  }

  /** A job's view; with `waitMs`, answered when the job ends or after that long. */
  job(id: string, waitMs = 0) {
    return this.json(JobViewSchema, `/api/jobs/${encodeURIComponent(id)}${waitMs > 0 ? `?wait=${waitMs}` : ""}`, {}, this.timeoutMs + waitMs);
  }

  cancel(id: string) {
    return this.json(JobViewSchema, `/api/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST" });
  }

  status() {
    return this.json(StatusViewSchema, "/api/status");
  }

  reportData() {
    return this.json(ReportDataSchema, "/api/report-data");
  }

  /**
   * Polls until the job is done, failed or cancelled; `onProgress` sees every poll. A
   * coordinator that goes away (a restart) is waited for, with backoff, for up to
   * `reconnectMs`: jobs survive restarts, so the wait should too.
   */
  async waitForJob(
    id: string,
    opts: { intervalMs?: number; reconnectMs?: number; onProgress?: (j: JobView) => void; onReconnecting?: (e: EdgepoolError) => void; signal?: AbortSignal } = {},
  ): Promise<JobView> {
    const interval = opts.intervalMs ?? 200;
    // Even the first ask is a long poll: a short job is then seen done in one round trip.
    const wait = interval;
    for (;;) {
      // A long poll: the coordinator answers as soon as the job ends, or after `interval` with
      // its progress; so the end is seen at once without polling fast.
      const asked = Date.now();
      const j = await this.retrying(() => this.job(id, wait), opts.reconnectMs ?? 300_000, opts.onReconnecting);
      opts.onProgress?.(j);
      if (TERMINAL.has(j.state)) return j;
      if (opts.signal?.aborted) throw new EdgepoolError("E_CANCELLED", "stopped waiting for the job");
      // A coordinator that answered early without the job ending (one that ignores ?wait) is not asked again at once.
      const left = wait - (Date.now() - asked);
      if (left > 0) await new Promise((r) => setTimeout(r, left));
    }
  }

  /** Runs `fn`, retrying with backoff while the coordinator is unreachable, for up to `forMs`. */
  async retrying<T>(fn: () => Promise<T>, forMs: number, onRetry?: (e: EdgepoolError) => void): Promise<T> {
    const deadline = Date.now() + forMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        const retriable = err instanceof EdgepoolError && (err.code === "E_UNAVAILABLE" || err.code === "E_TIMEOUT");
        if (!retriable || Date.now() > deadline) throw err;
        onRetry?.(err);
        await new Promise((r) => setTimeout(r, Math.min(2000, 100 * 2 ** attempt)));
      }
    }
  }

  /** Downloads an output to `file` via a temp name, so a partial download never looks complete. */
  async downloadOutput(id: string, name: string, file: string): Promise<void> {
    const res = await this.request(`/api/jobs/${encodeURIComponent(id)}/outputs/${encodeURIComponent(name)}`, {}, 3_600_000);
    if (!res.body) throw new EdgepoolError("E_IO", `empty body for output ${name}`);
    const tmp = `${file}.partial-${process.pid}`;
    try {
      await pipeline(Readable.fromWeb(res.body as import("node:stream/web").ReadableStream<Uint8Array>), createWriteStream(tmp));
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw new EdgepoolError("E_IO", `could not save output '${name}' to ${file}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
  }
}
