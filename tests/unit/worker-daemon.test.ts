import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import * as ort from "onnxruntime-node";
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { WebSocketServer, type RawData, type WebSocket } from "ws";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { encodeFrame } from "../../shared/protocol/frame.js";
import { DrainingSchema, HelloSchema, PROTOCOL_VERSION, parseResultFrame, type Hello, type ResultFrame } from "../../shared/protocol/messages.js";
import { maxAbsDiff } from "../../shared/tensor/tensor-ops.js";
import type { Tensor } from "../../shared/tensor/tensor.js";
import { parseWorkerConfig, type WorkerConfig } from "../../worker/config.js";
import { backoffDelay } from "../../worker/connection.js";
import { WorkerDaemon, type WorkerDaemonEvents } from "../../worker/daemon.js";
import { loadWorkerId } from "../../worker/identity.js";
import { ModelCache, modelBaseUrl } from "../../worker/model-cache.js";

const WAIT_MS = 15_000;
const log = pino({ level: process.env.TEST_LOG ?? "silent" });

const mlp = catalogModel("mlp");
const MLP = mlp.build();
const MLP_SHA = createHash("sha256").update(MLP).digest("hex");
/** A hash whose download serves the wrong bytes (the dynamic mlp): the worker must refuse them. */
const LYING_SHA = createHash("sha256").update(mlp.build({ batch: 1 })).digest("hex");
/** The transformer with its batch dim fixed at 1: run row by row, about 0.1 ms a row. */
const transformer = catalogModel("transformer");
const TF1 = transformer.build({ batch: 1 });
const TF1_SHA = createHash("sha256").update(TF1).digest("hex");

type Inbound =
  | { kind: "connection"; ws: WebSocket }
  | { kind: "text"; ws: WebSocket; msg: unknown }
  | { kind: "binary"; ws: WebSocket; bytes: Uint8Array }
  | { kind: "close"; ws: WebSocket };

function rawBytes(data: RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return data;
}

/**
 * A tiny coordinator: WebSocket + GET /models/<sha> on one port. Everything a worker sends is
 * recorded in order; `take` waits for (and consumes) the first record that matches.
 */
class FakeCoordinator {
  readonly inbox: Inbound[] = [];
  private waiters = new Set<() => void>();
  readonly downloads: string[] = [];

  private constructor(
    readonly server: http.Server,
    readonly wss: WebSocketServer,
  ) {}

  static async start(models: Record<string, Uint8Array>, port = 0): Promise<FakeCoordinator> {
    const server = http.createServer((req, res) => {
      const m = /^\/models\/([0-9a-f]{64})$/.exec(req.url ?? "");
      const bytes = m ? models[m[1]!] : undefined;
      if (!m || !bytes) {
        res.writeHead(404).end();
        return;
      }
      fake.downloads.push(m[1]!);
      res.writeHead(200, { "content-type": "application/octet-stream", "content-length": bytes.byteLength }).end(bytes);
    });
    const wss = new WebSocketServer({ server });
    const fake = new FakeCoordinator(server, wss);
    wss.on("connection", (ws) => {
      fake.push({ kind: "connection", ws });
      ws.on("message", (data, isBinary) => {
        const bytes = rawBytes(data);
        if (isBinary) fake.push({ kind: "binary", ws, bytes });
        else fake.push({ kind: "text", ws, msg: JSON.parse(bytes.toString("utf8")) as unknown });
      });
      ws.on("close", () => fake.push({ kind: "close", ws }));
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", resolve);
    });
    return fake;
  }

  get url(): string {
    return `ws://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private push(m: Inbound): void {
    this.inbox.push(m);
    for (const w of [...this.waiters]) w();
  }

  /** Removes and returns the first record that `pick` maps to a value, waiting for it if needed. */
  take<T>(what: string, pick: (m: Inbound) => T | undefined, timeoutMs = WAIT_MS): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const check = (): boolean => {
        for (let i = 0; i < this.inbox.length; i++) {
          const v = pick(this.inbox[i]!);
          if (v !== undefined) {
            this.inbox.splice(i, 1);
            cleanup();
            resolve(v);
            return true;
          }
        }
        return false;
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`fake coordinator: timed out waiting for ${what}; inbox: ${JSON.stringify(this.inbox.map((m) => m.kind === "text" ? m.msg : m.kind))}`));
      }, timeoutMs);
      const cleanup = (): void => {
        clearTimeout(timer);
        this.waiters.delete(waiter);
      };
      const waiter = (): void => void check();
      this.waiters.add(waiter);
      check();
    });
  }

  /** The next hello, with the socket it came on. */
  hello(): Promise<{ ws: WebSocket; hello: Hello }> {
    return this.take("hello", (m) => {
      if (m.kind !== "text" || (m.msg as { type?: unknown }).type !== "hello") return undefined;
      return { ws: m.ws, hello: HelloSchema.parse(m.msg) };
    });
  }

  textOfType(type: string, shardId?: string): Promise<Record<string, unknown>> {
    return this.take(`${type} ${shardId ?? ""}`, (m) => {
      if (m.kind !== "text") return undefined;
      const msg = m.msg as Record<string, unknown>;
      return msg.type === type && (shardId === undefined || msg.shardId === shardId) ? msg : undefined;
    });
  }

  result(shardId: string): Promise<ResultFrame> {
    return this.take(`result ${shardId}`, (m) => {
      if (m.kind !== "binary") return undefined;
      const r = parseResultFrame(m.bytes);
      return r.header.shardId === shardId ? r : undefined;
    });
  }

  /** Shard ids of every result frame received and not yet taken. */
  pendingResultIds(): string[] {
    return this.inbox.flatMap((m) => (m.kind === "binary" ? [parseResultFrame(m.bytes).header.shardId] : []));
  }

  async stop(): Promise<void> {
    for (const ws of this.wss.clients) ws.terminate();
    await new Promise<void>((resolve) => this.wss.close(() => resolve()));
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Waits for the next `event` whose payload passes `pred`. */
function nextEvent<K extends keyof WorkerDaemonEvents>(
  daemon: WorkerDaemon,
  event: K,
  pred: (...args: WorkerDaemonEvents[K]) => boolean = () => true,
  timeoutMs = WAIT_MS,
): Promise<WorkerDaemonEvents[K]> {
  return new Promise((resolve, reject) => {
    const on = daemon.on.bind(daemon) as (e: K, l: (...a: WorkerDaemonEvents[K]) => void) => WorkerDaemon;
    const off = daemon.off.bind(daemon) as (e: K, l: (...a: WorkerDaemonEvents[K]) => void) => WorkerDaemon;
    const listener = (...args: WorkerDaemonEvents[K]): void => {
      if (!pred(...args)) return;
      clearTimeout(timer);
      off(event, listener);
      resolve(args);
    };
    const timer = setTimeout(() => {
      off(event, listener);
      reject(new Error(`timed out waiting for daemon event ${String(event)}`));
    }, timeoutMs);
    on(event, listener);
  });
}

function shardFrame(shardId: string, model: string, x: Tensor, start = 0): Uint8Array {
  return encodeFrame({ type: "shard", shardId, jobId: "job-1", model, start, end: start + x.dims[0]! }, [{ name: "x", ...x }]);
}

function transformerFrame(shardId: string, rows: number): Uint8Array {
  const inputs = Object.entries(transformer.sampleInputs(rows, 4)).map(([name, t]) => ({ name, ...t }));
  return encodeFrame({ type: "shard", shardId, jobId: "job-1", model: TF1_SHA, start: 0, end: rows }, inputs);
}

async function referenceLogits(x: Tensor): Promise<Float32Array> {
  const session = await ort.InferenceSession.create(MLP);
  try {
    const out = await session.run({ x: new ort.Tensor("float32", x.data as Float32Array, x.dims) });
    return out.logits!.data as Float32Array;
  } finally {
    await session.release();
  }
}

let fake: FakeCoordinator;
let stateDir: string;
let daemon: WorkerDaemon | undefined;

function configFor(overrides: Record<string, unknown> = {}): WorkerConfig {
  return parseWorkerConfig({
    coordinator: fake.url.replace(/^ws:/, "http:"),
    name: "test-worker",
    slots: 1,
    threads: 1,
    stateDir,
    reconnectMinMs: 20,
    reconnectMaxMs: 100,
    helloTimeoutMs: 5000,
    ...overrides,
  });
}

/** A daemon (not started) with the persistent id from stateDir; afterEach closes it. */
async function newDaemon(overrides: Record<string, unknown> = {}): Promise<WorkerDaemon> {
  const d = new WorkerDaemon(configFor(overrides), { log, workerId: await loadWorkerId(stateDir, log) });
  daemon = d;
  return d;
}

/** Starts a daemon with a persistent id from stateDir, answers its hello, and waits until it is ready. */
async function readyDaemon(overrides: Record<string, unknown> = {}): Promise<{ d: WorkerDaemon; ws: WebSocket; hello: Hello }> {
  const d = await newDaemon(overrides);
  const ready = nextEvent(d, "ready");
  d.start();
  const { ws, hello } = await fake.hello();
  ws.send(JSON.stringify({ type: "welcome", protocol: PROTOCOL_VERSION, workerId: hello.workerId, modelPath: "/models" }));
  await ready;
  return { d, ws, hello };
}

beforeEach(async () => {
  stateDir = await mkdtemp(path.join(os.tmpdir(), "edgepool-worker-test-"));
  fake = await FakeCoordinator.start({ [MLP_SHA]: MLP, [LYING_SHA]: MLP, [TF1_SHA]: TF1 });
});

afterEach(async () => {
  await daemon?.close();
  daemon = undefined;
  await fake.stop();
  await rm(stateDir, { recursive: true, force: true });
});

describe("WorkerDaemon against a fake coordinator", () => {
  it("says hello with the right fields and returns correct logits for a shard", async () => {
    const { ws, hello, d } = await readyDaemon({ slots: 2, threads: 2 });
    expect(hello.protocol).toBe(PROTOCOL_VERSION);
    expect(hello.workerId).toBe((await readFile(path.join(stateDir, "worker-id"), "utf8")).trim());
    expect(hello.workerId).toMatch(/^[0-9a-f-]{36}$/);
    expect(hello).toMatchObject({
      name: "test-worker",
      platform: process.platform,
      arch: process.arch,
      cpus: os.availableParallelism(),
      memoryBytes: os.totalmem(),
      runtime: { name: "onnxruntime-node", version: ort.env.versions.common },
      threads: 2,
      slots: 2,
      virtual: false,
    });
    expect(d.state).toBe("ready");

    const x = mlp.sampleInputs(6, 5).x!;
    ws.send(shardFrame("s1", MLP_SHA, x, 100));
    const r = await fake.result("s1");
    expect(r.header).toMatchObject({ type: "result", shardId: "s1", jobId: "job-1" });
    expect(r.header.computeMs).toBeGreaterThanOrEqual(0);
    expect(r.tensors.map((t) => [t.name, t.dtype, t.dims])).toEqual([["logits", "float32", [6, 10]]]);
    const want = await referenceLogits(x);
    expect(maxAbsDiff(r.tensors[0]!, { dtype: "float32", dims: [6, 10], data: want })).toBeLessThan(1e-6);
    expect(fake.downloads).toEqual([MLP_SHA]);
    expect(existsSync(path.join(stateDir, "models", `${MLP_SHA}.onnx`))).toBe(true);
    expect(d.snapshot()).toMatchObject({ shardsDone: 1, samplesDone: 6, shardErrors: 0 });
  });

  it("answers a model whose bytes do not match its hash with E_MODEL_HASH and keeps serving", async () => {
    const { ws, d } = await readyDaemon();
    const x = mlp.sampleInputs(2).x!;
    ws.send(shardFrame("bad", LYING_SHA, x));
    const err = await fake.textOfType("shard_error", "bad");
    expect(err).toMatchObject({ type: "shard_error", shardId: "bad", jobId: "job-1", code: "E_MODEL_HASH" });
    expect(String(err.message)).toContain(LYING_SHA);
    expect(existsSync(path.join(stateDir, "models", `${LYING_SHA}.onnx`))).toBe(false);

    ws.send(shardFrame("good", MLP_SHA, x));
    const r = await fake.result("good");
    expect(r.tensors[0]!.dims).toEqual([2, 10]);
    expect(d.state).toBe("ready");
    expect(d.snapshot()).toMatchObject({ shardsDone: 1, shardErrors: 1 });
  });

  it("ignores malformed frames and messages and keeps serving", async () => {
    const { ws, d } = await readyDaemon();
    const garbage = nextEvent(d, "malformed", (m) => m.kind === "binary");
    ws.send(new Uint8Array([0xff, 0xff, 0xff, 0x7f, 1, 2, 3]));
    expect((await garbage)[0].code).toBe("E_PROTOCOL");

    const badHeader = nextEvent(d, "malformed", (m) => m.kind === "binary");
    ws.send(encodeFrame({ type: "shard", shardId: "h", jobId: "job-1", model: "not-a-sha", start: 0, end: 1 }, []));
    expect((await badHeader)[0].message).toContain("model");

    const badText = nextEvent(d, "malformed", (m) => m.kind === "text");
    ws.send("{ this is not json");
    await badText;

    const x = mlp.sampleInputs(3).x!;
    ws.send(shardFrame("after-garbage", MLP_SHA, x));
    const r = await fake.result("after-garbage");
    expect(r.tensors[0]!.dims).toEqual([3, 10]);
    // Garbage earns no answer on the wire: the only message after the hello is that result.
    expect(fake.inbox.filter((m) => m.kind === "text" || m.kind === "binary")).toEqual([]);
  });

  it("decodes frames that arrive several to one socket read, at unaligned offsets", async () => {
    const { ws } = await readyDaemon({ slots: 1 });
    const inputs = [64, 3, 5].map((rows, i) => mlp.sampleInputs(rows, 20 + i).x!);
    // Corking the server's socket puts the three frames into one TCP write, so the worker's
    // ws parser hands the later ones out as slices of a shared read buffer. The first frame
    // is over 64 KiB and so has a 10-byte ws header: what follows it starts 2 bytes off a
    // multiple of 4, which no float32 view can use without a copy.
    const socket = (ws as unknown as { _socket: import("node:net").Socket })._socket;
    socket.cork();
    inputs.forEach((x, i) => ws.send(shardFrame(`burst-${i}`, MLP_SHA, x)));
    socket.uncork();
    for (const [i, x] of inputs.entries()) {
      const r = await fake.result(`burst-${i}`);
      const want = await referenceLogits(x);
      expect(maxAbsDiff(r.tensors[0]!, { dtype: "float32", dims: [x.dims[0]!, 10], data: want })).toBeLessThan(1e-6);
    }
  });

  it("reconnects by itself with the same worker id after the coordinator drops it", async () => {
    const first = await readyDaemon();
    const dropped = nextEvent(first.d, "disconnected");
    const readyAgain = nextEvent(first.d, "ready");
    for (const ws of fake.wss.clients) ws.terminate();
    await dropped;
    expect(first.d.state).toBe("connecting");

    const second = await fake.hello();
    expect(second.ws).not.toBe(first.ws);
    expect(second.hello.workerId).toBe(first.hello.workerId);
    second.ws.send(JSON.stringify({ type: "welcome", protocol: PROTOCOL_VERSION, workerId: second.hello.workerId, modelPath: "/models" }));
    await readyAgain;

    second.ws.send(shardFrame("after-reconnect", MLP_SHA, mlp.sampleInputs(2).x!));
    expect((await fake.result("after-reconnect")).tensors[0]!.dims).toEqual([2, 10]);
  });

  it("rides out a coordinator outage: dials fail while it is down, then it reconnects", async () => {
    const first = await readyDaemon();
    const port = new URL(fake.url).port;
    const lost = nextEvent(first.d, "disconnected", (i) => i.wasOpen);
    const refused = nextEvent(first.d, "disconnected", (i) => !i.wasOpen);
    await fake.stop();
    await lost;
    // At least one dial is refused while nothing listens: the worker keeps trying.
    await refused;
    expect(first.d.state).toBe("connecting");
    const ready = nextEvent(first.d, "ready");
    fake = await FakeCoordinator.start({ [MLP_SHA]: MLP }, Number(port));
    const again = await fake.hello();
    expect(again.hello.workerId).toBe(first.hello.workerId);
    again.ws.send(JSON.stringify({ type: "welcome", protocol: PROTOCOL_VERSION, workerId: again.hello.workerId, modelPath: "/models" }));
    await ready;
    again.ws.send(shardFrame("after-outage", MLP_SHA, mlp.sampleInputs(2).x!));
    expect((await fake.result("after-outage")).tensors[0]!.dims).toEqual([2, 10]);
  });

  it("drops a connection whose welcome does not come in time and dials again", async () => {
    const d = await newDaemon({ helloTimeoutMs: 150 });
    const dropped = nextEvent(d, "disconnected");
    const ready = nextEvent(d, "ready");
    d.start();
    const first = await fake.hello();
    // No welcome: the worker must give up on this connection by itself.
    const [info] = await dropped;
    expect(info.wasOpen).toBe(true);
    expect(d.state).toBe("connecting");
    const second = await fake.hello();
    expect(second.ws).not.toBe(first.ws);
    expect(second.hello.workerId).toBe(first.hello.workerId);
    second.ws.send(JSON.stringify({ type: "welcome", protocol: PROTOCOL_VERSION, workerId: second.hello.workerId, modelPath: "/models" }));
    await ready;
    expect(d.state).toBe("ready");
  });

  it("drops a cancelled queued shard without answering it", async () => {
    const { ws, d } = await readyDaemon({ slots: 1 });
    const discarded = nextEvent(d, "shardDiscarded", (e) => e.shardId === "b");
    ws.send(shardFrame("a", MLP_SHA, mlp.sampleInputs(64).x!));
    ws.send(shardFrame("b", MLP_SHA, mlp.sampleInputs(4).x!));
    ws.send(JSON.stringify({ type: "cancel", shardId: "b", reason: "test" }));
    await discarded;
    await fake.result("a");
    ws.send(shardFrame("c", MLP_SHA, mlp.sampleInputs(4).x!));
    await fake.result("c");
    expect(fake.pendingResultIds()).toEqual([]);
    expect(d.snapshot()).toMatchObject({ shardsDone: 2 });
  });

  it("finishes and reports a running shard when closed, and close() twice resolves", async () => {
    const { ws, d } = await readyDaemon();
    const closedSocket = fake.take("socket close", (m) => (m.kind === "close" && m.ws === ws ? true : undefined));
    const received = nextEvent(d, "shardReceived");
    ws.send(shardFrame("in-flight", MLP_SHA, mlp.sampleInputs(32).x!));
    await received;
    expect(d.snapshot().running).toBe(1);
    const a = d.close();
    const b = d.close();
    expect(d.state).toBe("draining");
    await Promise.all([a, b]);
    await d.close();
    expect(d.state).toBe("closed");
    expect((await fake.result("in-flight")).tensors[0]!.dims).toEqual([32, 10]);
    await closedSocket;
  });

  it("hands queued shards back with draining, then reports the running one, then closes", async () => {
    const { ws, d } = await readyDaemon({ slots: 1 });
    const queued = nextEvent(d, "shardReceived", (h) => h.shardId === "queued");
    ws.send(shardFrame("running", MLP_SHA, mlp.sampleInputs(256).x!));
    ws.send(shardFrame("queued", MLP_SHA, mlp.sampleInputs(4).x!));
    await queued;
    // The first is still loading its model or computing; the second waits for the one slot.
    expect(d.snapshot()).toMatchObject({ running: 1, queued: 1 });
    const released = nextEvent(d, "shardDiscarded", (e) => e.shardId === "queued");
    await d.close();
    expect(d.state).toBe("closed");
    expect((await released)[0].reason).toContain("draining");
    // Messages arrive in the order they were sent, and the close after all of them.
    await fake.take("socket close", (m) => (m.kind === "close" && m.ws === ws ? true : undefined));
    const seen = fake.inbox.flatMap((m): unknown[] => {
      if (m.ws !== ws) return [];
      if (m.kind === "text") return [DrainingSchema.parse(m.msg)];
      if (m.kind === "binary") return [`result ${parseResultFrame(m.bytes).header.shardId}`];
      return [];
    });
    expect(seen).toEqual([{ type: "draining", released: ["queued"] }, "result running"]);
  });

  it("rests a slot after each shard for the CPU cap and announces it in throttleMs", async () => {
    const { ws, d } = await readyDaemon({ slots: 1, maxCpu: 1 });
    ws.send(shardFrame("a", MLP_SHA, mlp.sampleInputs(256).x!));
    ws.send(shardFrame("b", MLP_SHA, mlp.sampleInputs(256).x!));
    const a = await fake.result("a");
    const aAt = performance.now();
    expect(a.header.computeMs).toBeGreaterThan(0);
    expect(Math.abs(a.header.throttleMs - 99 * a.header.computeMs)).toBeLessThan(0.01);
    // At 1% the rest is 99 times the compute: b is still waiting for the resting slot.
    expect(d.snapshot()).toMatchObject({ running: 0, resting: 1, queued: 1 });
    const b = await fake.result("b");
    // Timers may fire up to a millisecond early against performance.now().
    expect(performance.now() - aAt).toBeGreaterThanOrEqual(a.header.throttleMs - 2);
    expect(b.header.throttleMs).toBeGreaterThan(0);
    expect(d.snapshot()).toMatchObject({ shardsDone: 2, resting: 1 });
    // close() does not sit out the rest.
    await d.close();
    expect(d.snapshot().resting).toBe(0);
  });

  it("answers pings between rows of a long sample-by-sample shard", async () => {
    const { ws } = await readyDaemon({ slots: 1 });
    // Model download and session creation first, so the shard below is all inference.
    ws.send(transformerFrame("warm", 1));
    await fake.result("warm");

    // Ping, wait for the pong, ping again. The probe shares this process's event loop with
    // the worker, so a blocked loop shows as a gap between pongs rather than as a slow pong.
    const pongsAt: number[] = [];
    let probing = true;
    let next: NodeJS.Timeout | undefined;
    ws.on("pong", () => {
      pongsAt.push(performance.now());
      if (probing) next = setTimeout(() => ws.ping(), 2);
    });
    try {
      ws.send(transformerFrame("long", 3000));
      pongsAt.push(performance.now());
      ws.ping();
      const r = await fake.result("long");
      pongsAt.push(performance.now());
      probing = false;
      expect(r.tensors[1]!.dims).toEqual([3000, 64]);
      // Long enough that a loop blocked for the whole shard would leave a gap of over 100 ms.
      expect(r.header.computeMs).toBeGreaterThan(100);
      const gaps = pongsAt.slice(1).map((t, i) => t - pongsAt[i]!);
      expect(gaps.length).toBeGreaterThanOrEqual(r.header.computeMs / 25);
      // A loop blocked for the whole shard leaves one gap of about computeMs; rows that yield
      // leave only short ones. Half of computeMs separates the two on a loaded machine too
      // (a 50 ms bound flaked at 50.5 ms under CI load).
      expect(Math.max(...gaps)).toBeLessThan(r.header.computeMs / 2);
    } finally {
      probing = false;
      clearTimeout(next);
    }
  });

  it("stops for good on a protocol version error from the coordinator", async () => {
    const d = await newDaemon();
    const fatal = nextEvent(d, "fatal");
    const closed = nextEvent(d, "closed");
    d.start();
    const { ws } = await fake.hello();
    ws.send(JSON.stringify({ type: "error", code: "E_VERSION", message: "worker speaks protocol version 1 but this side speaks 2" }));
    const [e] = await fatal;
    expect(e.code).toBe("E_VERSION");
    expect(e.message).toContain("protocol version");
    await closed;
    expect(d.state).toBe("closed");
    expect(d.fatal?.code).toBe("E_VERSION");
  });
});

describe("ModelCache", () => {
  const cacheLog = pino({ level: "silent" });

  it("downloads once for concurrent requests, reuses the file, and replaces a corrupt one", async () => {
    const dir = path.join(stateDir, "models");
    const base = modelBaseUrl(fake.url, "/models");
    expect(base).toBe(`http://${new URL(fake.url).host}/models`);
    const cache = new ModelCache({ dir, downloadTimeoutMs: 5000, log: cacheLog });
    try {
      const [a, b] = await Promise.all([cache.get(MLP_SHA, base), cache.get(MLP_SHA, base)]);
      expect(Buffer.compare(a, MLP)).toBe(0);
      expect(b).toBe(a);
      expect(fake.downloads).toEqual([MLP_SHA]);
      expect(Buffer.compare(await readFile(cache.pathOf(MLP_SHA)), MLP)).toBe(0);

      const again = await cache.get(MLP_SHA, base);
      expect(Buffer.compare(again, MLP)).toBe(0);
      expect(fake.downloads).toEqual([MLP_SHA]);

      await writeFile(cache.pathOf(MLP_SHA), "rotten");
      expect(Buffer.compare(await cache.get(MLP_SHA, base), MLP)).toBe(0);
      expect(fake.downloads).toEqual([MLP_SHA, MLP_SHA]);
    } finally {
      cache.close();
    }
  });

  it("fails clearly on a missing model, a bad hash name and after close", async () => {
    const cache = new ModelCache({ dir: path.join(stateDir, "models"), downloadTimeoutMs: 5000, log: cacheLog });
    const base = modelBaseUrl(fake.url, "/models");
    await expect(cache.get("a".repeat(64), base)).rejects.toMatchObject({ code: "E_MODEL_LOAD" });
    await expect(cache.get("../../etc/passwd", base)).rejects.toMatchObject({ code: "E_BAD_REQUEST" });
    cache.close();
    cache.close();
    await expect(cache.get(MLP_SHA, base)).rejects.toMatchObject({ code: "E_CANCELLED" });
    expect(fake.downloads).toEqual([]);
  });
});

describe("loadWorkerId", () => {
  it("creates an id once, reuses it, and replaces a corrupt file", async () => {
    const dir = path.join(stateDir, "fresh", "nested");
    const id = await loadWorkerId(dir, log);
    expect(id).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    expect(await loadWorkerId(dir, log)).toBe(id);
    await writeFile(path.join(dir, "worker-id"), "\u0000garbage");
    const replaced = await loadWorkerId(dir, log);
    expect(replaced).not.toBe(id);
    expect((await readFile(path.join(dir, "worker-id"), "utf8")).trim()).toBe(replaced);
    expect(await loadWorkerId(dir, log)).toBe(replaced);
  });
});

describe("parseWorkerConfig", () => {
  it("normalizes friendly input and fills defaults", () => {
    const c = parseWorkerConfig({ coordinator: "https://pool.example:8443/", slots: "3", stateDir: "~/edge" });
    expect(c.coordinator).toBe("wss://pool.example:8443/");
    expect(c.slots).toBe(3);
    expect(c.threads).toBe(1);
    expect(c.name).toBe(os.hostname().slice(0, 128));
    expect(c.stateDir).toBe(path.join(os.homedir(), "edge"));
    expect(c).toMatchObject({ reconnectMinMs: 250, reconnectMaxMs: 10_000, logLevel: "info", maxCpu: 100 });
    expect(parseWorkerConfig({ coordinator: "ws://h:1", maxCpu: "25" }).maxCpu).toBe(25);
    expect(parseWorkerConfig({ coordinator: "ws://h:1", maxCpu: 12.5 }).maxCpu).toBe(12.5);
    expect(parseWorkerConfig({ coordinator: "http://10.0.0.2:7070" }).coordinator).toBe("ws://10.0.0.2:7070/");
    expect(parseWorkerConfig({ coordinator: "ws://h:1" }).stateDir).toBe(path.join(os.homedir(), ".edgepool", "worker"));
  });

  it("rejects bad values with E_CONFIG naming the option", () => {
    const bad = (input: unknown): string => {
      try {
        parseWorkerConfig(input);
      } catch (err) {
        expect((err as { code?: string }).code).toBe("E_CONFIG");
        return (err as Error).message;
      }
      throw new Error(`accepted ${JSON.stringify(input)}`);
    };
    expect(bad({ coordinator: "ftp://host:21" })).toContain("ws://host:port");
    expect(bad({ coordinator: "localhost:7070" })).toContain("ws://localhost:7070");
    expect(bad({ coordinator: "ws://bad host:1" })).toContain("not a URL");
    expect(bad({})).toContain("coordinator");
    expect(bad({ coordinator: "ws://h:1", slots: 0 })).toContain("slots");
    expect(bad({ coordinator: "ws://h:1", maxCpu: 0 })).toContain("--max-cpu");
    expect(bad({ coordinator: "ws://h:1", maxCpu: "101" })).toContain("--max-cpu");
    expect(bad({ coordinator: "ws://h:1", maxCpu: "half" })).toContain("--max-cpu");
    expect(bad({ coordinator: "ws://h:1", reconnectMinMs: 500, reconnectMaxMs: 100 })).toContain("reconnectMinMs");
  });
});

describe("backoffDelay", () => {
  it("doubles from the minimum up to the maximum, jittered within the upper half", () => {
    expect(backoffDelay(0, 250, 10_000, () => 0)).toBe(250);
    expect(backoffDelay(0, 250, 10_000, () => 1)).toBe(250);
    expect(backoffDelay(3, 250, 10_000, () => 0)).toBe(1000);
    expect(backoffDelay(3, 250, 10_000, () => 1)).toBe(2000);
    expect(backoffDelay(50, 250, 10_000, () => 0.999)).toBeLessThanOrEqual(10_000);
    expect(backoffDelay(50, 250, 10_000, () => 0)).toBe(5000);
  });
});
