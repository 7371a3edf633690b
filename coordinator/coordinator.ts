/**
 * The coordinator process: one port for HTTP (models, jobs, status) and WebSocket
 * (workers), a data directory with the SQLite job database, models and tensors, and the
 * periodic throughput log line.
 */
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { mkdir, stat } from "node:fs/promises";
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import type { Duplex } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Logger } from "pino";
import { WebSocketServer } from "ws";
import { CATALOG } from "../shared/onnx/catalog.js";
import { EdgepoolError, toEdgepoolError } from "../shared/errors.js";
import { FRAME_MEDIA_TYPE, decodeFrame, encodeFrame } from "../shared/protocol/frame.js";
import { PROTOCOL_VERSION } from "../shared/protocol/messages.js";
import { Authenticator, SEES_ALL, redactUrl, refuseUpgrade, selectProtocol, type Viewer } from "./http/auth.js";
import type { CoordinatorConfig } from "./config.js";
import { isDashboardAsset, serveDashboardAsset } from "./dashboard/assets.js";
import { buildSnapshot } from "./dashboard/snapshot.js";
import { EventStream } from "./http/sse.js";
import { parseRequestUrl, readBody, readJson, sendError, sendJson } from "./http/http-util.js";
import { JobDb } from "./jobs/job-db.js";
import { CreateJobSchema, InlineJobSchema, JobService, jobView } from "./jobs/job-service.js";
import { JoinPage } from "./join/page.js";
import { CoordinatorEvents } from "./observe/events.js";
import { logEvents } from "./observe/log-events.js";
import { CoordinatorMetrics } from "./observe/metrics.js";
import { ModelStore } from "./jobs/model-store.js";
import { Scheduler } from "./scheduling/scheduler.js";
import { Throughput } from "./observe/throughput.js";
import { WorkerGateway } from "./workers/gateway.js";
import { Liveness } from "./workers/liveness.js";

export const VERSION = "0.1.0";

/** ?wait=<ms> on a job request: answer when the job ends, or after that long (a long poll, at most 60 s). */
function waitParam(url: URL): number {
  return Math.min(60_000, Math.max(0, Number(url.searchParams.get("wait") ?? 0) || 0));
}

function isFrameBody(req: IncomingMessage): boolean {
  return (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase() === FRAME_MEDIA_TYPE;
}

/** Connections refused for being over a cap are logged at most this often (with a count). */
const REFUSAL_LOG_MS = 10_000;

export class Coordinator {
  private readonly server: http.Server | https.Server;
  /** Tokens and roles; an open pool when no tokens are configured. */
  private readonly auth: Authenticator;
  private readonly wss: WebSocketServer;
  private readonly db: JobDb;
  /** Work done by real workers; virtual (simulated) workers are counted apart, never mixed in. */
  readonly throughput = new Throughput();
  readonly virtualThroughput = new Throughput();
  /** Jobs that had shards on virtual workers (their figures are not about real devices). */
  private readonly virtualJobs = new Set<string>();
  readonly scheduler: Scheduler;
  /** What happens to workers, shards and jobs, for logs, metrics and tests (observe/events.ts). */
  readonly events: CoordinatorEvents;
  private readonly liveness: Liveness;
  readonly jobs: JobService;
  readonly models: ModelStore;
  readonly metrics: CoordinatorMetrics;
  private readonly gateway: WorkerGateway;
  /** The browser worker's page and assets (GET /join), and the join QR code. */
  private readonly join: JoinPage;
  /** The dashboard's live feed (GET /api/events). */
  private readonly feed: EventStream;
  private statsTimer: NodeJS.Timeout | null = null;
  /** Milliseconds from a shard being handed back (dead worker, timeout) to it being sent again. */
  readonly resendLatency: number[] = [];
  private lastResentAt: number | null = null;
  private acceptingWork = true;
  private closing: Promise<void> | null = null;
  private lastTotals = { shards: 0, samples: 0, flops: 0, virtualShards: 0, virtualSamples: 0, at: Date.now() };

  private constructor(
    readonly config: CoordinatorConfig,
    private readonly log: Logger,
  ) {
    this.db = new JobDb(path.join(config.dataDir, "edgepool.sqlite"));
    this.models = new ModelStore(path.join(config.dataDir, "models"), this.db, config.maxModelBytes);
    this.events = new CoordinatorEvents(log);
    logEvents(this.events, log);
    this.scheduler = new Scheduler(
      log,
      this.events,
      { real: this.throughput, virtual: this.virtualThroughput },
      {
        maxShardAttempts: config.maxShardAttempts,
        targetShardMs: config.targetShardMs,
        probeTimeoutMs: config.probeTimeoutMs,
        minShardTimeoutMs: config.minShardTimeoutMs,
      },
      {
        jobFinished: (job) => {
          if (job.touchedByVirtual) this.virtualJobs.add(job.id);
          this.jobs.forget(job);
        },
      },
    );
    this.events.on("shardDispatched", (e) => {
      if (e.resentAfterMs === null) return;
      this.resendLatency.push(e.resentAfterMs);
      if (this.resendLatency.length > 1000) this.resendLatency.shift();
      this.lastResentAt = Date.now();
    });
    this.metrics = new CoordinatorMetrics({ scheduler: this.scheduler, throughput: { real: this.throughput, virtual: this.virtualThroughput }, events: this.events });
    this.jobs = new JobService(config.dataDir, this.db, this.models, this.scheduler, {
      maxInputBytes: config.maxInputBytes,
      maxFrameBytes: config.maxFrameBytes,
      maxJobsPerClient: config.maxJobsPerClient,
    });
    this.liveness = new Liveness(log, this.scheduler, config.heartbeatTimeoutMs);
    this.gateway = new WorkerGateway(log, this.scheduler, this.events, this.liveness, config);
    this.join = new JoinPage(log);
    this.auth = new Authenticator(config.tokens);
    this.feed = new EventStream((owner) =>
      buildSnapshot(this.status(owner === null ? SEES_ALL : { seesAll: false, owner }), {
        flopsPerSample: (sha) => this.models.get(sha)?.info.flopsPerSample ?? null,
        isVirtualJob: (id) => this.virtualJobs.has(id) || this.jobs.isVirtual(id),
        virtualRates: this.virtualThroughput.rates(),
      }),
    );
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      this.route(req, res).catch((err: unknown) => {
        const e = toEdgepoolError(err);
        // The URL may carry a token (?token=); headers are never logged.
        if (e.code === "E_INTERNAL") this.log.error({ err: e.message, url: redactUrl(req.url) }, "request failed");
        sendError(res, e);
      });
    };
    // Slow or silent peers are cut off: headers within headersTimeoutMs (checked every
    // quarter of it, not Node's default 30 s), a whole request within requestTimeoutMs, an idle
    // keep-alive connection after keepAliveTimeoutMs, a TLS handshake within headersTimeoutMs.
    const serverOptions: http.ServerOptions = {
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      keepAliveTimeout: config.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(config.headersTimeoutMs / 4))),
    };
    // The same routes and WebSocket endpoint over TLS (https, wss) when a certificate is given.
    this.server = config.tls
      ? https.createServer({ ...serverOptions, cert: config.tls.cert, key: config.tls.key, handshakeTimeout: config.headersTimeoutMs }, onRequest)
      : http.createServer(serverOptions, onRequest);
    this.wss = new WebSocketServer({ noServer: true, maxPayload: config.maxFrameBytes, perMessageDeflate: false, handleProtocols: selectProtocol });
    this.server.on("upgrade", (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      try {
        this.onUpgrade(req, socket, head);
      } catch (err) {
        // Nothing a peer sends may throw out of an event handler (it would end the process).
        this.log.error({ err: toEdgepoolError(err).message, url: redactUrl(req.url) }, "upgrade failed");
        socket.destroy();
      }
    });
    this.server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
      // Unparseable requests, headers over 16 KiB, headers or requests too slow: a status, then close.
      const status = err.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? "408 Request Timeout" : "400 Bad Request";
      if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      setTimeout(() => socket.destroy(), 1000).unref();
    });
  }

  /** Refusals over a connection cap since the last log line, and when that line was written. */
  private capRefusals = { count: 0, loggedAt: 0 };

  /**
   * A WebSocket upgrade: the path, the caps on connections (--max-workers, --max-handshakes),
   * then the token; any refusal is a plain HTTP answer before a WebSocket opens.
   */
  private onUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    let url: URL;
    try {
      url = parseRequestUrl(req.url).url;
    } catch (err) {
      refuseUpgrade(socket, toEdgepoolError(err));
      return;
    }
    if (url.pathname !== "/" && url.pathname !== "/ws") {
      socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    const full =
      this.gateway.connections >= this.config.maxWorkers
        ? `the pool is full: ${this.gateway.connections} WebSocket connections (--max-workers ${this.config.maxWorkers}); retry later`
        : this.gateway.handshaking >= this.config.maxHandshakes
          ? `${this.gateway.handshaking} connections are still handshaking (--max-handshakes ${this.config.maxHandshakes}); retry later`
          : null;
    if (full !== null) {
      const now = Date.now();
      this.capRefusals.count += 1;
      if (now - this.capRefusals.loggedAt >= REFUSAL_LOG_MS) {
        this.log.warn({ refused: this.capRefusals.count, connections: this.gateway.connections, handshaking: this.gateway.handshaking, err: full }, "worker connections refused: over a cap");
        this.capRefusals = { count: 0, loggedAt: now };
      }
      refuseUpgrade(socket, new EdgepoolError("E_UNAVAILABLE", full));
      return;
    }
    // Refused before the WebSocket opens: a plain 401/403 on the raw socket.
    try {
      this.auth.upgradeAccess(req, url);
    } catch (err) {
      const e = toEdgepoolError(err);
      this.log.warn({ remote: `${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? 0}`, code: e.code, err: e.message }, "worker refused: bad or missing token");
      refuseUpgrade(socket, e);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.gateway.accept(ws, req));
  }

  /** Opens the data directory, listens, and starts the throughput log. */
  static async start(config: CoordinatorConfig, log: Logger): Promise<Coordinator> {
    await mkdir(config.dataDir, { recursive: true });
    const c = new Coordinator(config, log);
    await c.models.init();
    await c.jobs.init();
    await new Promise<void>((resolve, reject) => {
      c.server.once("error", (err) =>
        reject(new EdgepoolError("E_CONFIG", `cannot listen on ${config.host}:${config.port}: ${err.message}; pick another --port or --host`, { cause: err })),
      );
      c.server.listen(config.port, config.host, () => resolve());
    });
    c.scheduleStats();
    c.liveness.start();
    c.join.warm();
    const resumed = await c.jobs.resume();
    log.info({ url: c.url, dataDir: config.dataDir, protocol: PROTOCOL_VERSION, resumedJobs: resumed, ...c.securitySummary() }, "coordinator listening");
    return c;
  }

  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /** http://host:port, with a wildcard host shown as this machine's loopback. */
  get url(): string {
    const host = this.config.host === "0.0.0.0" || this.config.host === "::" ? "127.0.0.1" : this.config.host;
    return `${this.config.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${this.port}`;
  }

  /** For the start line: TLS on or off and tokens per role (counts only, never a token). */
  private securitySummary(): { tls: boolean; tokens: Record<string, number> | "none (open pool)" } {
    if (this.config.tokens.length === 0) return { tls: this.config.tls !== null, tokens: "none (open pool)" };
    const tokens: Record<string, number> = {};
    for (const t of this.config.tokens) tokens[t.role] = (tokens[t.role] ?? 0) + 1;
    return { tls: this.config.tls !== null, tokens };
  }

  private scheduleStats(): void {
    this.statsTimer = setTimeout(() => {
      this.logStats();
      this.scheduleStats();
    }, this.config.statsIntervalMs);
    this.statsTimer.unref();
  }

  /**
   * One info line per interval while work runs: workers, busy workers and rates over the
   * interval. Virtual workers' work is reported in fields of its own, never in the real rates.
   */
  private logStats(): void {
    const now = Date.now();
    const total = this.throughput.total;
    const vtotal = this.virtualThroughput.total;
    const last = this.lastTotals;
    const working = this.scheduler.activeJobs.length > 0 || total.shards !== last.shards || vtotal.shards !== last.virtualShards;
    const secs = Math.max(1e-3, (now - last.at) / 1000);
    this.lastTotals = { ...total, virtualShards: vtotal.shards, virtualSamples: vtotal.samples, at: now };
    if (!working) return;
    let virtualWorkers = 0;
    for (const w of this.scheduler.workers) if (w.virtual) virtualWorkers++;
    this.log.info(
      {
        workers: this.scheduler.workers.size - virtualWorkers,
        busyWorkers: this.scheduler.busyWorkers(),
        jobs: this.scheduler.activeJobs.length,
        shardsPerSec: round((total.shards - last.shards) / secs),
        samplesPerSec: round((total.samples - last.samples) / secs),
        gflopsPerSec: round((total.flops - last.flops) / secs / 1e9),
        ...(virtualWorkers > 0 || vtotal.shards > 0
          ? {
              virtualWorkers,
              virtualShardsPerSec: round((vtotal.shards - last.virtualShards) / secs),
              virtualSamplesPerSec: round((vtotal.samples - last.virtualSamples) / secs),
            }
          : {}),
      },
      "pool throughput",
    );
  }

  /** The measured half of the report: per worker and model, jobs, capacity (GET /api/report-data). */
  reportData(viewer: Viewer = SEES_ALL) {
    const models = this.jobs.list(viewer).map((j) => j.model);
    const uniqueModels = [...new Set(models)].flatMap((sha) => {
      const m = this.models.get(sha);
      return m ? [{ sha256: sha, flopsPerSample: m.info.flopsPerSample, name: catalogNameOf(sha) }] : [];
    });
    const cpus = os.cpus();
    return {
      generatedAt: Date.now(),
      coordinator: {
        url: this.url,
        version: VERSION,
        host: { cpus: cpus.length, platform: process.platform, arch: process.arch, cpuModel: cpus[0]?.model ?? "unknown" },
        uptimeSec: Math.round(process.uptime()),
        rssBytes: process.memoryUsage().rss,
        connectedWorkers: this.scheduler.workers.size,
        peakConnectedWorkers: this.scheduler.peakWorkers,
        peakShardsPerSec: Math.max(this.throughput.peakShardsPerSec, this.virtualThroughput.peakShardsPerSec),
      },
      models: uniqueModels,
      workers: [
        ...[...this.scheduler.workers].map((w) => w.toReport(true)),
        ...this.scheduler.departed.map((w) => w.toReport(false)),
      ],
      jobs: this.jobs.list(viewer).map((row) => {
        const v = jobView(row);
        return {
          id: v.id, model: v.model, state: v.state, rows: v.rows, samplesDone: v.samplesDone,
          startedAt: v.startedAt, finishedAt: v.finishedAt, samplesPerSec: v.samplesPerSec,
          virtual: this.virtualJobs.has(v.id) || this.jobs.isVirtual(v.id),
        };
      }),
    };
  }

  /** Everything `status` shows; a client sees only its own jobs. */
  status(viewer: Viewer = SEES_ALL) {
    const r = this.throughput.rates();
    return {
      version: VERSION,
      protocol: PROTOCOL_VERSION,
      url: this.url,
      uptimeSec: Math.round(process.uptime()),
      workers: [...this.scheduler.workers].map((w) => w.toStatus()),
      jobs: this.jobs.list(viewer).map(jobView),
      throughput: {
        shardsPerSec: r.shardsPerSec,
        samplesPerSec: r.samplesPerSec,
        gflopsPerSec: r.gflopsPerSec,
        totalShards: this.throughput.total.shards,
        totalSamples: this.throughput.total.samples,
        totalGflop: this.throughput.total.flops / 1e9,
      },
      /** Work by virtual (simulated) workers, kept apart from the real figures above. */
      virtualThroughput: {
        totalShards: this.virtualThroughput.total.shards,
        totalSamples: this.virtualThroughput.total.samples,
        peakShardsPerSec: this.virtualThroughput.peakShardsPerSec,
      },
      counters: { ...this.scheduler.counters },
      failover: {
        resends: this.resendLatency.length,
        lastResentAt: this.lastResentAt,
        resendLatencyMs: summarize(this.resendLatency),
      },
      memory: { rssBytes: process.memoryUsage().rss, hostname: os.hostname() },
    };
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const { url, parts } = parseRequestUrl(req.url);
    const method = req.method ?? "GET";
    const [a, b, c, d, e] = parts;
    // Throws E_AUTH / E_FORBIDDEN; public routes (pages, /api/health) pass with any caller.
    const viewer = this.auth.httpAccess(req, url, method, parts);

    if (method === "GET" && isDashboardAsset(url.pathname)) return serveDashboardAsset(res, url.pathname);
    if ((method === "GET" || method === "HEAD") && this.join.handles(url.pathname)) return this.join.serve(req, res, url);
    if (a === "models" && b && !c && method === "GET") return this.serveFile(res, this.models.pathOf(b), "application/octet-stream");
    if (a === "metrics" && !b && method === "GET") return this.metrics.respond(res);
    if (a !== "api") throw new EdgepoolError("E_NOT_FOUND", `no route ${method} ${url.pathname}; the API lives under /api`);

    if (b === "health" && method === "GET") return sendJson(res, 200, { ok: true, version: VERSION, protocol: PROTOCOL_VERSION });
    if (b === "events" && !c && method === "GET") return this.feed.open(req, res, viewer.seesAll ? null : viewer.owner);
    if (b === "status" && method === "GET") return sendJson(res, 200, this.status(viewer));
    if (b === "report-data" && method === "GET") return sendJson(res, 200, this.reportData(viewer));
    if (b === "models" && !c && method === "POST") {
      const m = await this.models.upload(req);
      return sendJson(res, 201, { sha256: m.sha256, bytes: m.bytes, ...m.info });
    }
    if (b === "models" && c && !d && method === "GET") {
      const m = this.models.require(c);
      return sendJson(res, 200, { sha256: m.sha256, bytes: m.bytes, ...m.info });
    }
    if (!this.acceptingWork && method === "POST" && (b === "uploads" || b === "jobs" || b === "models")) {
      throw new EdgepoolError("E_UNAVAILABLE", "the coordinator is shutting down and takes no new work; retry once it is back");
    }
    if (b === "uploads" && !c && method === "POST") return sendJson(res, 201, await this.jobs.upload(req));
    if (b === "jobs" && !c && method === "POST") {
      if (isFrameBody(req)) return this.createInlineJob(req, res, url, viewer);
      const body = await readJson(req, CreateJobSchema);
      return sendJson(res, 201, jobView(await this.jobs.create(body, viewer.owner)));
    }
    if (b === "jobs" && !c && method === "GET") return sendJson(res, 200, { jobs: this.jobs.list(viewer).map(jobView) });
    if (b === "jobs" && c && !d && method === "GET") {
      return sendJson(res, 200, jobView(await this.jobs.waitForEnd(c, waitParam(url), viewer)));
    }
    if (b === "jobs" && c && ((d === "cancel" && method === "POST") || (!d && method === "DELETE"))) {
      return sendJson(res, 200, jobView(this.jobs.cancel(c, viewer)));
    }
    if (b === "jobs" && c && d === "outputs" && e && method === "GET") {
      return this.serveFile(res, this.jobs.outputFile(c, e, viewer), "application/octet-stream");
    }
    throw new EdgepoolError("E_NOT_FOUND", `no route ${method} ${url.pathname}`);
  }

  /**
   * POST /api/jobs with a frame body: the job's settings in the header, its inputs as the
   * tensors, all in one request (small jobs: one round trip instead of an upload per input,
   * a create and a poll). With ?wait=<ms>, the answer waits for the job to end; when it is
   * done in time, the answer is a frame too, the job's view in its header and the outputs as
   * its tensors. Otherwise it is the job's JSON view, as for any other job.
   */
  private async createInlineJob(req: IncomingMessage, res: ServerResponse, url: URL, viewer: Viewer): Promise<void> {
    const body = await readBody(req, this.config.maxFrameBytes, "inline job frame", "--max-frame-mb");
    let frame: ReturnType<typeof decodeFrame>;
    try {
      frame = decodeFrame(body);
    } catch (err) {
      throw new EdgepoolError("E_BAD_REQUEST", `the inline job body is not an edgepool frame: ${toEdgepoolError(err).message}`);
    }
    const spec = InlineJobSchema.safeParse(frame.header);
    if (!spec.success) {
      const issue = spec.error.issues[0];
      throw new EdgepoolError("E_BAD_REQUEST", `invalid inline job header: ${issue?.path.join(".") ?? ""} ${issue?.message ?? ""}`.trim());
    }
    const wait = waitParam(url);
    const { job, inputsWritten } = await this.jobs.createInline(spec.data, frame.tensors, viewer.owner, wait > 0);
    if (wait <= 0) {
      // No one waits for its outputs here: answered once its inputs are on disk, so the job survives a restart from then on.
      await inputsWritten;
      return sendJson(res, 201, jobView(this.jobs.get(job.id)));
    }
    const { row, outputs } = await this.jobs.inlineAnswer(job, wait);
    if (!outputs) return sendJson(res, 201, jobView(row));
    const answer = encodeFrame({ job: jobView(row) }, outputs);
    res.writeHead(201, { "content-type": FRAME_MEDIA_TYPE, "content-length": answer.byteLength });
    res.end(answer);
  }

  private async serveFile(res: ServerResponse, file: string, type: string): Promise<void> {
    let size: number;
    try {
      size = (await stat(file)).size;
    } catch {
      throw new EdgepoolError("E_NOT_FOUND", `${path.basename(file)} is not on this coordinator`);
    }
    res.writeHead(200, { "content-type": type, "content-length": size });
    try {
      await pipeline(createReadStream(file), res);
    } catch (err) {
      // A client that goes away mid-download is not a coordinator error.
      if (res.destroyed && !res.writableFinished && (err as NodeJS.ErrnoException).code === "ERR_STREAM_PREMATURE_CLOSE") return;
      throw err;
    }
  }

  /**
   * Stops taking work, closes every worker socket, and closes the database. Job state is
   * already durable (every accepted shard is recorded as it lands), so unfinished jobs resume
   * on the next start. Safe to call twice.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.acceptingWork = false;
      this.feed.close();
      if (this.statsTimer) clearTimeout(this.statsTimer);
      this.liveness.close();
      for (const ws of this.wss.clients) ws.close(1001, "coordinator shutting down");
      const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
      this.server.closeAllConnections();
      setTimeout(() => {
        for (const ws of this.wss.clients) ws.terminate();
      }, 1000).unref();
      await closed;
      this.wss.close();
      await this.jobs.close();
      this.db.close();
      this.log.info("coordinator stopped");
    })();
    return this.closing;
  }
}

let catalogShas: Map<string, string> | null = null;

/** The catalog name of a model, when its bytes are a catalog build (computed once, lazily). */
function catalogNameOf(sha: string): string | null {
  catalogShas ??= new Map(CATALOG.map((m) => [createHash("sha256").update(m.build()).digest("hex"), m.name]));
  return catalogShas.get(sha) ?? null;
}

function summarize(xs: readonly number[]): { median: number; max: number } {
  if (xs.length === 0) return { median: 0, max: 0 };
  const sorted = [...xs].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)]!, max: sorted[sorted.length - 1]! };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
