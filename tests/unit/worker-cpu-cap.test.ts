/**
 * `--max-cpu`: a real worker process against a tiny coordinator that keeps it fed with cnn
 * shards, as the real one does (one running, one queued).
 *
 * What the cap controls is the duty cycle of a slot: compute c ms, then rest c·(100/maxCpu − 1)
 * ms before the next shard. So the assertions are about the worker's own accounting (each
 * result's computeMs and throttleMs) and about whether the rests were really taken: with
 * slots 1, the results of a run of shards cannot arrive faster than the rests owed between
 * them plus the compute after them. A busy machine can only stretch that span, never shrink
 * it, so this holds on a loaded CI box; a worker that skipped its rests would answer in a
 * quarter of the time at 25%. Counts of shards or CPU seconds in a wall-clock window depend
 * on how much CPU the machine has to spare, so they are not asserted from below.
 *
 * CPU time also comes from /proc, over the same run of shards: for the main thread, which
 * runs the daemon and ONNX Runtime (one intra-op thread), and for the whole process, which
 * adds V8's helper threads. Those mostly collect garbage, and how much depends on GC
 * heuristics more than on the daemon: each cnn shard brings 3 MiB of input for about 15 ms
 * of compute, so at 25% the whole process lands anywhere from about 30% to 40% of a core on
 * a small VM, while the main thread stays near 30%. A loaded machine gives the worker less
 * CPU, not more, so these are checked from above only.
 */
import { execFileSync, spawn, type ChildProcess } from "node:child_process";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { NODE_FLAGS } from "../../shared/node/node-flags.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { encodeFrame } from "../../shared/protocol/frame.js";
import { DrainingSchema, HelloSchema, PROTOCOL_VERSION, parseResultFrame, type Hello, type ResultHeader } from "../../shared/protocol/messages.js";

const BIN = fileURLToPath(new URL("../../bin/edgepool.js", import.meta.url));
const CNN = catalogModel("cnn");
const MODEL = CNN.build();
const MODEL_SHA = createHash("sha256").update(MODEL).digest("hex");
/** About 15 ms of cnn inference on one thread: long enough that per-shard overhead is small. */
const ROWS = 256;
const IMAGES = CNN.sampleInputs(ROWS, 3).image!;
/** Shards kept outstanding: one running, one queued, as the coordinator's credit would. */
const IN_FLIGHT = 2;
/** Results to see before the measurement starts: model download, session creation and JIT are not steady state. */
const WARMUP_RESULTS = 8;
/** Results measured after the warmup. */
const MEASURED_RESULTS = 20;
/** Generous: on a loaded machine a capped worker's 28 shards can take several seconds. */
const WAIT_MS = 60_000;

function clockTicksPerSecond(): number {
  try {
    const n = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    if (Number.isInteger(n) && n > 0) return n;
  } catch {
    // getconf missing: Linux has used 100 on every common architecture for decades.
  }
  return 100;
}

/** utime + stime, in seconds, from a /proc stat file (a process's, or one thread's). */
function cpuSeconds(statPath: string, ticksPerSecond: number): number {
  const stat = readFileSync(statPath, "utf8");
  // The command name (field 2) is in parentheses and may hold spaces; count fields after it.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of the line are 12 and 13 after the name.
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

function rawBytes(data: RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return data;
}

interface Received {
  header: ResultHeader;
  at: number;
}

/**
 * A coordinator that welcomes one worker and keeps `IN_FLIGHT` shards outstanding until
 * `stopFeeding()`. Records results and text messages in arrival order.
 */
class StreamingCoordinator {
  readonly results: Received[] = [];
  readonly texts: Record<string, unknown>[] = [];
  hello: Hello | null = null;
  closed = false;
  private feeding = true;
  private sent = 0;
  private socket: WebSocket | null = null;
  private readonly waiters = new Set<() => void>();

  private constructor(
    private readonly server: http.Server,
    private readonly wss: WebSocketServer,
  ) {}

  static async start(): Promise<StreamingCoordinator> {
    const server = http.createServer((req, res) => {
      if (req.url !== `/models/${MODEL_SHA}`) {
        res.writeHead(404).end();
        return;
      }
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": MODEL.byteLength }).end(MODEL);
    });
    const wss = new WebSocketServer({ server });
    const c = new StreamingCoordinator(server, wss);
    wss.on("connection", (ws) => c.onConnection(ws));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(0, "127.0.0.1", resolve);
    });
    return c;
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Resolves once `cond` holds, checked after every message; rejects after `timeoutMs`. */
  until(what: () => string, cond: () => boolean, timeoutMs = WAIT_MS): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const check = (): void => {
        if (!cond()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out waiting for ${what()}; results ${this.results.length}, texts ${JSON.stringify(this.texts)}`));
      }, timeoutMs);
      this.waiters.add(check);
      check();
    });
  }

  stopFeeding(): void {
    this.feeding = false;
  }

  async stop(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onConnection(ws: WebSocket): void {
    this.socket = ws;
    ws.on("message", (data, isBinary) => {
      const bytes = rawBytes(data);
      if (isBinary) {
        this.results.push({ header: parseResultFrame(bytes).header, at: performance.now() });
        this.feed();
      } else {
        const msg = JSON.parse(bytes.toString("utf8")) as Record<string, unknown>;
        this.texts.push(msg);
        if (msg.type === "hello") {
          this.hello = HelloSchema.parse(msg);
          ws.send(JSON.stringify({ type: "welcome", protocol: PROTOCOL_VERSION, workerId: this.hello.workerId, modelPath: "/models" }));
          this.feed();
        }
      }
      this.notify();
    });
    ws.on("close", () => {
      this.closed = true;
      this.notify();
    });
  }

  private feed(): void {
    while (this.feeding && this.socket && this.sent - this.results.length < IN_FLIGHT) {
      const shardId = `s${this.sent}`;
      this.sent += 1;
      this.socket.send(encodeFrame({ type: "shard", shardId, jobId: "job-cpu", model: MODEL_SHA, start: 0, end: ROWS }, [{ name: "image", ...IMAGES }]));
    }
  }

  private notify(): void {
    for (const w of [...this.waiters]) w();
  }
}

interface Measurement {
  /** Worker process CPU seconds (all threads) per wall second over the measured shards (1 = one core). */
  cpuShare: number;
  /** The same for the worker's main thread alone. */
  mainShare: number;
  /** The result that started the measurement, then the measured ones, in arrival order. */
  results: Received[];
  hello: Hello;
  exitCode: number | null;
  /** Text messages after the hello, in order. */
  texts: Record<string, unknown>[];
}

const cleanups: (() => Promise<void>)[] = [];

afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function exited(child: ChildProcess): Promise<number | null> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once("exit", (code) => resolve(code)));
}

/**
 * Runs a worker process at `maxCpu` under a steady stream of shards and measures it over
 * `MEASURED_RESULTS` results after the warmup (waiting for results, not for time).
 */
async function measure(maxCpu: number): Promise<Measurement> {
  const ticks = clockTicksPerSecond();
  const coordinator = await StreamingCoordinator.start();
  cleanups.push(() => coordinator.stop());
  const stateDir = await mkdtemp(path.join(os.tmpdir(), "edgepool-cpu-cap-"));
  cleanups.push(() => rm(stateDir, { recursive: true, force: true }));
  const args = ["worker", "--coordinator", coordinator.url, "--max-cpu", String(maxCpu), "--state-dir", stateDir, "--log-level", "warn"];
  const child = spawn(process.execPath, [...NODE_FLAGS, BIN, ...args], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited(child);
  });
  const pid = child.pid!;

  await coordinator.until(() => `${WARMUP_RESULTS} results (worker stderr: ${stderr})`, () => coordinator.results.length >= WARMUP_RESULTS);
  const first = coordinator.results.length - 1;
  const processStat = `/proc/${pid}/stat`;
  const mainStat = `/proc/${pid}/task/${pid}/stat`;
  const main0 = cpuSeconds(mainStat, ticks);
  const cpu0 = cpuSeconds(processStat, ticks);
  const wall0 = performance.now();
  const last = first + MEASURED_RESULTS;
  await coordinator.until(() => `${last + 1} results (worker stderr: ${stderr})`, () => coordinator.results.length > last);
  const cpu1 = cpuSeconds(processStat, ticks);
  const main1 = cpuSeconds(mainStat, ticks);
  const wall1 = performance.now();
  const results = coordinator.results.slice(first, last + 1);

  // Stop as an operator would: the worker hands back its queued shard, reports the running
  // one and exits 0.
  coordinator.stopFeeding();
  const textsBefore = coordinator.texts.length;
  child.kill("SIGTERM");
  const exitCode = await exited(child);
  await coordinator.until(() => "socket close", () => coordinator.closed);
  const wallSeconds = (wall1 - wall0) / 1000;
  return {
    cpuShare: (cpu1 - cpu0) / wallSeconds,
    mainShare: (main1 - main0) / wallSeconds,
    results,
    hello: coordinator.hello!,
    exitCode,
    texts: coordinator.texts.slice(textsBefore),
  };
}

/**
 * The measured run from the worker's own accounting: its duty cycle (compute over compute
 * plus rest), the span from the first result to the last, and the least that span can be if
 * every rest was taken (the rests after each result but the last, plus the compute of each
 * shard after the first).
 */
function account(results: readonly Received[]): { duty: number; spanMs: number; leastSpanMs: number; busyShare: number } {
  let compute = 0;
  let rest = 0;
  for (const { header } of results) {
    compute += header.computeMs;
    rest += header.throttleMs;
  }
  const firstR = results[0]!;
  const lastR = results[results.length - 1]!;
  const spanMs = lastR.at - firstR.at;
  const computeAfterFirst = compute - firstR.header.computeMs;
  return { duty: compute / (compute + rest), spanMs, leastSpanMs: rest - lastR.header.throttleMs + computeAfterFirst, busyShare: computeAfterFirst / spanMs };
}

function describeShare(maxCpu: number, m: Measurement): string {
  const pct = (x: number): string => `${(x * 100).toFixed(1)}%`;
  const a = account(m.results);
  return `--max-cpu ${maxCpu}: duty ${pct(a.duty)} by the worker's accounting, computing ${pct(a.busyShare)} of ${a.spanMs.toFixed(0)} ms (at least ${a.leastSpanMs.toFixed(0)} ms with its rests); process ${pct(m.cpuShare)}, main thread ${pct(m.mainShare)} of one core over ${m.results.length - 1} shards`;
}

describe.skipIf(process.platform !== "linux")("worker --max-cpu", () => {
  it("keeps a worker at 25% to a quarter duty cycle, takes its rests, and announces them in throttleMs", async ({ annotate }) => {
    const m = await measure(25);
    await annotate(describeShare(25, m));
    expect(m.hello.maxCpu).toBe(25);
    expect(m.results).toHaveLength(MEASURED_RESULTS + 1);
    for (const { header: r } of m.results) {
      expect(r.computeMs).toBeGreaterThan(0);
      expect(Math.abs(r.throttleMs - 3 * r.computeMs)).toBeLessThan(0.01);
    }
    const a = account(m.results);
    expect(a.duty).toBeCloseTo(0.25, 3);
    // The rests were taken: results came no faster than rests plus compute allow. A worker
    // that announced rests but skipped them would span about a quarter of leastSpanMs. The
    // slack covers the first result arriving late at this (maybe busy) test process.
    expect(a.spanMs).toBeGreaterThanOrEqual(0.75 * a.leastSpanMs);
    // A quarter of the time in inference, plus the socket, frame decoding and the JS around
    // it; garbage collection on V8's own threads on top (see the header comment).
    expect(m.mainShare).toBeLessThanOrEqual(0.35);
    expect(m.cpuShare).toBeLessThanOrEqual(0.45);
    // SIGTERM: the queued shard is handed back, the running one reported, and the exit is clean.
    expect(m.exitCode).toBe(0);
    const drained = m.texts.flatMap((t) => {
      const r = DrainingSchema.safeParse(t);
      return r.success ? [r.data] : [];
    });
    expect(drained).toHaveLength(1);
  });

  it("takes no rests at 100%: no throttle, and shard follows shard", async ({ annotate }) => {
    const m = await measure(100);
    await annotate(describeShare(100, m));
    expect(m.hello.maxCpu).toBe(100);
    for (const { header: r } of m.results) expect(r.throttleMs).toBe(0);
    const a = account(m.results);
    expect(a.duty).toBe(1);
    // Computing most of the span: a slot that rested as it would at 50% or below fails this.
    // Compute is measured in wall time, so a busy machine stretches it along with the span.
    expect(a.busyShare).toBeGreaterThan(0.5);
    expect(m.exitCode).toBe(0);
  });
});
