/**
 * The coordinator process: one port for HTTP (models, jobs, status) and WebSocket (workers),
 * and a data directory with the SQLite job database, models and tensors. This module only
 * wires the parts together and runs their lifecycle:
 *
 *   starting ──▶ listening ──▶ closing ──▶ closed
 *       │                         │           ▲
 *       └───────▶ closing         └─▶ terminating
 *
 * `starting` opens the data directory and listens (a failure closes what was opened);
 * `listening` serves. `closing` is the graceful stage of close(): no new work (POSTs and
 * worker upgrades answer E_UNAVAILABLE), the dashboard feed ends, worker sockets get 1001,
 * and requests in flight finish. If that takes longer than `closeGraceMs`, `terminating`
 * cuts what is left (worker sockets terminated, HTTP connections closed). Then the job files
 * and the database close, every step run even if another failed. Job state is durable as it
 * changes (every accepted shard is recorded as it lands), so unfinished jobs resume on the
 * next start. A transition not drawn above throws E_STATE.
 */
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Logger } from "pino";
import { WebSocketServer } from "ws";
import { EdgepoolError } from "../shared/errors.js";
import { PROTOCOL_VERSION } from "../shared/protocol/messages.js";
import type { StatusView } from "./api/status.js";
import type { CoordinatorConfig } from "./config.js";
import { buildSnapshot } from "./dashboard/snapshot.js";
import { Authenticator, SEES_ALL, selectProtocol, type Viewer } from "./http/auth.js";
import { Router, coordinatorRoutes } from "./http/router.js";
import { HttpListener } from "./http/server.js";
import { EventStream } from "./http/sse.js";
import { UpgradeGate } from "./http/upgrade.js";
import { JobDb } from "./jobs/job-db.js";
import { JobService } from "./jobs/job-service.js";
import { ModelStore } from "./jobs/model-store.js";
import { JoinPage } from "./join/page.js";
import { CoordinatorEvents, type CoordinatorListening } from "./observe/events.js";
import { logEvents } from "./observe/log-events.js";
import { CoordinatorMetrics } from "./observe/metrics.js";
import { Failover, StatusViews, ThroughputLog } from "./observe/status.js";
import { Throughput } from "./observe/throughput.js";
import type { ReportData } from "./report/report-data.js";
import { Scheduler } from "./scheduling/scheduler.js";
import { WorkerGateway } from "./workers/gateway.js";
import { Liveness } from "./workers/liveness.js";


export type CoordinatorState = "starting" | "listening" | "closing" | "terminating" | "closed";

const TRANSITIONS: { readonly [S in CoordinatorState]: readonly CoordinatorState[] } = {
  starting: ["listening", "closing"],
  listening: ["closing"],
  closing: ["terminating", "closed"],
  terminating: ["closed"],
  closed: [],
};

/** After the forced stage, how long the last connections get to go before cleanup goes on without them. */
const TERMINATE_WAIT_MS = 1000;

export class Coordinator {
  private stateNow: CoordinatorState = "starting";
  private readonly db: JobDb;
  private readonly auth: Authenticator;
  private readonly http: HttpListener;
  private readonly wss: WebSocketServer;
  private readonly liveness: Liveness;
  /** The browser worker's page and assets (GET /join), and the join QR code. */
  private readonly join: JoinPage;
  /** The dashboard's live feed (GET /api/events). */
  private readonly feed: EventStream;
  private readonly views: StatusViews;
  private readonly throughputLog: ThroughputLog;
  private readonly failover: Failover;
  /** Jobs that had shards on virtual workers (their figures are not about real devices). */
  private readonly virtualJobs = new Set<string>();
  private closing: Promise<void> | null = null;

  /** Work done by real workers; virtual (simulated) workers are counted apart, never mixed in. */
  readonly throughput = new Throughput();
  readonly virtualThroughput = new Throughput();
  /** What happens to workers, shards, jobs and the coordinator itself (observe/events.ts). */
  readonly events: CoordinatorEvents;
  readonly scheduler: Scheduler;
  readonly jobs: JobService;
  readonly models: ModelStore;
  readonly metrics: CoordinatorMetrics;

  private constructor(
    readonly config: CoordinatorConfig,
    private readonly log: Logger,
  ) {
    this.db = new JobDb(path.join(config.dataDir, "edgepool.sqlite"));
    this.models = new ModelStore(path.join(config.dataDir, "models"), this.db, config.maxModelBytes);
    this.events = new CoordinatorEvents(log);
    logEvents(this.events, log);
    this.failover = new Failover(this.events);
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
    this.metrics = new CoordinatorMetrics({ scheduler: this.scheduler, throughput: { real: this.throughput, virtual: this.virtualThroughput }, events: this.events });
    this.jobs = new JobService(config.dataDir, this.db, this.models, this.scheduler, {
      maxInputBytes: config.maxInputBytes,
      maxFrameBytes: config.maxFrameBytes,
      maxJobsPerClient: config.maxJobsPerClient,
    });
    const isVirtualJob = (id: string) => this.virtualJobs.has(id) || this.jobs.isVirtual(id);
    const sources = { scheduler: this.scheduler, throughput: this.throughput, virtualThroughput: this.virtualThroughput };
    this.views = new StatusViews({ ...sources, url: () => this.url, jobs: this.jobs, models: this.models, failover: this.failover, isVirtualJob });
    this.throughputLog = new ThroughputLog(log, sources, config.statsIntervalMs);
    this.liveness = new Liveness(log, this.scheduler, config.heartbeatTimeoutMs);
    const gateway = new WorkerGateway(log, this.scheduler, this.events, this.liveness, config);
    this.join = new JoinPage(log);
    this.auth = new Authenticator(config.tokens);
    this.feed = new EventStream((owner) =>
      buildSnapshot(this.views.status(owner === null ? SEES_ALL : { seesAll: false, owner }), {
        flopsPerSample: (sha) => this.models.get(sha)?.info.flopsPerSample ?? null,
        isVirtualJob,
        virtualRates: this.virtualThroughput.rates(),
      }),
    );
    const acceptingWork = () => this.stateNow === "listening";
    const router = new Router(
      coordinatorRoutes({
        auth: this.auth, models: this.models, jobs: this.jobs, metrics: this.metrics, feed: this.feed, join: this.join,
        views: this.views, maxFrameBytes: config.maxFrameBytes, acceptingWork,
      }),
      this.auth,
      acceptingWork,
      log,
    );
    this.wss = new WebSocketServer({ noServer: true, maxPayload: config.maxFrameBytes, perMessageDeflate: false, handleProtocols: selectProtocol });
    const gate = new UpgradeGate(this.wss, gateway, this.auth, config, acceptingWork, log);
    this.http = new HttpListener(config, router.listener, gate.listener);
  }

  /** Opens the data directory, listens, resumes unfinished jobs, and starts the throughput log. */
  static async start(config: CoordinatorConfig, log: Logger): Promise<Coordinator> {
    await mkdir(config.dataDir, { recursive: true });
    const c = new Coordinator(config, log);
    try {
      await c.models.init();
      await c.jobs.init();
      await c.http.listen(config.port, config.host);
      c.throughputLog.start();
      c.liveness.start();
      c.join.warm();
      const resumedJobs = await c.jobs.resume();
      c.moveTo("listening");
      c.events.emit("coordinatorListening", { url: c.url, dataDir: config.dataDir, protocol: PROTOCOL_VERSION, resumedJobs, ...c.securitySummary() });
    } catch (err) {
      // Nothing half-open is left behind: the database lock above all, so a retry can open it.
      await c.close().catch(() => undefined);
      throw err;
    }
    return c;
  }

  /** Where the lifecycle is (see the header). */
  get state(): CoordinatorState {
    return this.stateNow;
  }

  get port(): number {
    return this.http.port;
  }

  /** http://host:port, with a wildcard host shown as this machine's loopback. */
  get url(): string {
    const host = this.config.host === "0.0.0.0" || this.config.host === "::" ? "127.0.0.1" : this.config.host;
    return `${this.config.tls ? "https" : "http"}://${host.includes(":") ? `[${host}]` : host}:${this.port}`;
  }

  /** Milliseconds from a shard being handed back (dead worker, timeout) to it being sent again. */
  get resendLatency(): readonly number[] {
    return this.failover.resendLatency;
  }

  /** Everything `status` shows; a client sees only its own jobs. */
  status(viewer: Viewer = SEES_ALL): StatusView {
    return this.views.status(viewer);
  }

  /** The measured half of the report: per worker and model, jobs, capacity (GET /api/report-data). */
  reportData(viewer: Viewer = SEES_ALL): ReportData {
    return this.views.reportData(viewer);
  }

  /** For the start line: TLS on or off and tokens per role (counts only, never a token). */
  private securitySummary(): Pick<CoordinatorListening, "tls" | "tokens"> {
    if (this.config.tokens.length === 0) return { tls: this.config.tls !== null, tokens: "none (open pool)" };
    const tokens: Record<string, number> = {};
    for (const t of this.config.tokens) tokens[t.role] = (tokens[t.role] ?? 0) + 1;
    return { tls: this.config.tls !== null, tokens };
  }

  private moveTo(next: CoordinatorState): void {
    if (!TRANSITIONS[this.stateNow].includes(next)) {
      throw new EdgepoolError("E_STATE", `the coordinator cannot go from ${this.stateNow} to ${next}`);
    }
    this.stateNow = next;
  }

  /**
   * Closes gracefully, then by force after `closeGraceMs` (see the header). Safe to call
   * twice: every call gets the same promise. Rejects, once every step has run, if one failed.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    const startedAt = Date.now();
    this.moveTo("closing");
    const failed: Array<{ step: string; err: unknown }> = [];
    const step = async (name: string, fn: () => unknown): Promise<void> => {
      try {
        await fn();
      } catch (err) {
        failed.push({ step: name, err });
        this.log.error({ step: name, err: err instanceof Error ? err.message : String(err) }, "a coordinator close step failed");
      }
    };

    // Graceful: no new work, nothing periodic, open streams ended, workers told to go.
    await step("stop timers", () => {
      this.throughputLog.stop();
      this.liveness.close();
    });
    await step("end the dashboard feed", () => this.feed.close());
    await step("close worker sockets", () => {
      for (const ws of this.wss.clients) ws.close(1001, "coordinator shutting down");
    });
    const drained = this.http.drain();
    let forced = false;
    if (!(await settlesWithin(drained, this.config.closeGraceMs))) {
      forced = true;
      this.moveTo("terminating");
      await step("terminate worker sockets", () => {
        for (const ws of this.wss.clients) ws.terminate();
      });
      await step("close HTTP connections", () => this.http.cut());
      if (!(await settlesWithin(drained, TERMINATE_WAIT_MS))) this.log.warn({ waitedMs: Date.now() - startedAt }, "connections still open after the forced close; closing the database anyway");
    }

    await step("close the WebSocket server", () => this.wss.close());
    await step("close job files", () => this.jobs.close());
    await step("close the database", () => this.db.close());
    this.moveTo("closed");
    this.events.emit("coordinatorStopped", { forced, ms: Date.now() - startedAt });
    if (failed.length > 0) {
      const first = failed[0]!;
      throw new EdgepoolError("E_INTERNAL", `closing the coordinator: ${failed.map((f) => f.step).join(", ")} failed`, { cause: failed.length === 1 ? first.err : new AggregateError(failed.map((f) => f.err)) });
    }
  }
}

/**
 * True when `p` settles within `ms`. The timer is not unref'd: a close waiting out its grace
 * period must keep the process alive until the database is closed.
 */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  try {
    return await Promise.race([p.then(() => true, () => true), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
