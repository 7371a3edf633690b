/**
 * A running coordinator under attack while real jobs run on two real workers: a fixed number
 * of seeded fuzz cases from this process, over WebSocket (random bytes and mutated frames and
 * JSON of every protocol type, before and after a valid hello, raw WebSocket framing errors,
 * floods, messages over the frame limit), raw TCP (malformed HTTP: bad methods, traversal
 * paths, huge headers, truncated and contradictory bodies; slow and stalled handshakes) and
 * fetch (every method on every route, bad bodies and content types).
 *
 * The test decides how much it sends (CASES), not the machine: a slow or busy machine takes
 * longer, within a deadline that only a wedged coordinator misses. Jobs run back to back on
 * the same input for as long as cases remain, and a case starts only while one of them is
 * running, so every case meets a running job however fast the job or the machine is.
 *
 * Asserted: every case was sent and settled; the coordinator never exits; its RSS stays under
 * idle + 300 MB; no request is answered 500 and nothing from the data directory leaks through
 * a traversal path; every stalled connection is dropped by the coordinator; no fuzz connection
 * ever completes a shard; every job's outputs equal a local ONNX Runtime run within 1e-5;
 * /api/health answers afterwards. The seed is printed; rerun a failure with
 * EDGEPOOL_FUZZ_SEED=<seed>.
 */
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { encodeFrame } from "../../shared/protocol/frame.js";
import { readNpyFile, writeNpyFile } from "../../shared/node/npy-file.js";
import { encodeNpy } from "../../shared/tensor/npy.js";
import { PROTOCOL_VERSION } from "../../shared/protocol/messages.js";
import { maxAbsDiff } from "../../shared/tensor/tensor-ops.js";
import type { Tensor } from "../../shared/tensor/tensor.js";
import { runLocally } from "../../worker/local-run.js";
import { Rng, fuzzSeed, mutateBytes, mutateJson } from "../harness/fuzz.js";
import { type Proc, startProc, startWorker, tempDir } from "../../harness/procs.js";

const SEED = fuzzSeed();
console.log(`coordinator fuzz seed ${SEED} (rerun with EDGEPOOL_FUZZ_SEED=${SEED})`);

/**
 * Rows of each wide-mlp job: a few seconds of work for the two workers, so that the local
 * reference run and the job still running when the fuzz ends stay short on a loaded machine.
 */
const ROWS = 20_000;
/** Small shards: many dispatches and results in flight while the fuzz runs. */
const SHARD_SIZE = 16;
/** Fuzz cases sent in all, whatever the machine's speed. */
const CASES = 2000;
/** One case is abandoned (its sockets destroyed) after this. */
const CASE_MS = 8000;
/**
 * All CASES settle well within this even on a 2-core machine with one core kept busy (about
 * 30 s there); only a coordinator that stops answering makes the fuzz miss it.
 */
const FUZZ_DEADLINE_MS = 100_000;
/** The job still running when the last case settles must end within this. */
const LAST_JOB_DEADLINE_MS = 60_000;
/** Cases run at once. */
const LANES = 12;
/** Connections left stalled on purpose (each must be dropped by the coordinator). */
const MAX_STALLED = 150;
const MAX_FRAME_MB = 8;
const HEADERS_TIMEOUT_MS = 2000;
const HELLO_TIMEOUT_MS = 2000;
const RSS_HEADROOM = 300 * 1024 * 1024;
const REAL = new Set(["real-1", "real-2"]);

let tmp: Awaited<ReturnType<typeof tempDir>>;
let coordinator: Proc;
let url: string;
let host: string;
let port: number;
const procs: Proc[] = [];
const f = (name: string) => path.join(tmp.dir, name);

beforeAll(async () => {
  tmp = await tempDir("fuzz");
  coordinator = startProc([
    "coordinator", "--port", "0", "--data-dir", f("coordinator"), "--max-frame-mb", String(MAX_FRAME_MB),
    "--headers-timeout", String(HEADERS_TIMEOUT_MS), "--hello-timeout", String(HELLO_TIMEOUT_MS), "--max-messages-per-sec", "500",
  ]);
  procs.push(coordinator);
  url = (await coordinator.waitFor(/listening on (http:\/\/\S+)/))[1]!;
  const u = new URL(url);
  host = u.hostname;
  port = Number(u.port);
  for (const name of REAL) procs.push(await startWorker(coordinator, url, name, f(`state-${name}`), ["--max-cpu", "50"]));
}, 60_000);

afterAll(async () => {
  for (const p of procs.reverse()) await p.stop();
  await tmp?.remove();
});

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? NaN);
  return kb * 1024;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Resolves with `p`, or with "timeout" after `ms` (the case is then abandoned and its sockets destroyed). */
function within<T>(p: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: NodeJS.Timeout;
  return Promise.race([p, new Promise<"timeout">((r) => (timer = setTimeout(() => r("timeout"), ms)))]).finally(() => clearTimeout(timer));
}

/** A masked client WebSocket frame; `claimed` overrides the length field (a lie), `mask: false` breaks the protocol. */
function wsFrame(opcode: number, payload: Buffer, o: { fin?: boolean; rsv?: number; mask?: boolean; claimed?: bigint } = {}): Buffer {
  const mask = o.mask ?? true;
  const len = o.claimed ?? BigInt(payload.byteLength);
  const head: number[] = [((o.fin ?? true) ? 0x80 : 0) | ((o.rsv ?? 0) << 4) | (opcode & 0x0f)];
  const m = mask ? 0x80 : 0;
  let ext = Buffer.alloc(0);
  if (len < 126n) head.push(m | Number(len));
  else if (len < 65536n) {
    head.push(m | 126);
    ext = Buffer.alloc(2);
    ext.writeUInt16BE(Number(len));
  } else {
    head.push(m | 127);
    ext = Buffer.alloc(8);
    ext.writeBigUInt64BE(len & 0xffffffffffffffffn);
  }
  const key = mask ? randomBytes(4) : Buffer.alloc(0);
  const body = Buffer.from(payload);
  if (mask) for (let i = 0; i < body.length; i++) body[i]! ^= key[i % 4]!;
  return Buffer.concat([Buffer.from(head), ext, key, body]);
}

interface Findings {
  cases: Map<string, number>;
  /** HTTP answers 500-599 other than 503 (a cap), with what was sent. */
  serverErrors: string[];
  /** Bodies that leaked data-directory or system files. */
  leaks: string[];
  /** Fuzz workers seen with completed shards. */
  fuzzShards: string[];
  stalled: Array<{ what: string; closedAt: number | null; openedAt: number }>;
  rss: number[];
  healthFailures: string[];
}

/** One lane of cases; lanes share their findings. */
class Fuzzer {
  constructor(
    private readonly rng: Rng,
    /** The id of the job running now: fake shard ids and job paths aim at it. */
    private readonly currentJob: () => string,
    private readonly sha: string,
    readonly found: Findings,
  ) {}

  private get jobId(): string {
    return this.currentJob();
  }

  private count(kind: string): void {
    this.found.cases.set(kind, (this.found.cases.get(kind) ?? 0) + 1);
  }

  private hello(): Record<string, unknown> {
    return {
      type: "hello", protocol: PROTOCOL_VERSION, workerId: `fuzz-${randomBytes(6).toString("hex")}`, name: `fuzz-${this.rng.int(1e6)}`,
      platform: "linux", arch: "x64", cpus: 1, memoryBytes: 1e9, runtime: { name: "fuzz", version: "0" }, threads: 1, slots: 1,
    };
  }

  /** Templates of every message type, coordinator-bound or not, with ids that match nothing dispatched. */
  private jsonTemplates(): unknown[] {
    const id = `${this.jobId}.${this.rng.int(50)}.${this.rng.int(1e6)}`;
    return [
      this.hello(),
      { type: "shard_error", shardId: id, jobId: this.jobId, code: "E_INFERENCE", message: "fuzz" },
      { type: "draining", released: [id, "x"] },
      { type: "welcome", protocol: PROTOCOL_VERSION, workerId: "w", modelPath: "/models" },
      { type: "cancel", shardId: id, reason: "fuzz" },
      { type: "error", code: "E_PROTOCOL", message: "fuzz" },
      { type: "result", shardId: id, jobId: this.jobId, computeMs: 1 },
      { type: "shard", shardId: id, jobId: this.jobId, model: this.sha, start: 0, end: 10 },
      { type: this.rng.string() },
    ];
  }

  /** A result frame for a shard this connection never got: valid bytes, or mutated ones. */
  private resultFrame(): Buffer {
    const rows = 1 + this.rng.int(8);
    const frame = encodeFrame(
      { type: "result", shardId: `${this.jobId}.${this.rng.int(50)}.${this.rng.int(1e6)}`, jobId: this.rng.chance(0.8) ? this.jobId : "j_0000000000000000", computeMs: this.rng.int(100) },
      [{ name: "logits", dtype: "float32", dims: [rows, 10], data: new Float32Array(rows * 10) }],
    );
    return this.rng.chance(0.5) ? Buffer.from(frame) : mutateBytes(this.rng, frame);
  }

  private textMessage(): string {
    const r = this.rng.int(10);
    if (r === 0) return this.rng.bytes(this.rng.int(100)).toString("utf8");
    if (r === 1) return "{".repeat(this.rng.int(5000));
    if (r === 2) return JSON.stringify(this.rng.pick(this.jsonTemplates()));
    return JSON.stringify(mutateJson(this.rng, this.rng.pick(this.jsonTemplates()))) ?? "null";
  }

  /** Opens a ws client; resolves once open (or null if refused / failed). */
  private wsOpen(): Promise<WebSocket | null> {
    return new Promise((resolve) => {
      const ws = new WebSocket(`ws://${host}:${port}/${this.rng.chance(0.5) ? "ws" : ""}`, { maxPayload: 64 * 1024 * 1024 });
      ws.once("open", () => resolve(ws));
      ws.once("unexpected-response", (_q, res) => {
        if ((res.statusCode ?? 0) >= 500 && res.statusCode !== 503) this.found.serverErrors.push(`ws upgrade answered ${res.statusCode}`);
        res.resume();
        ws.terminate();
        resolve(null);
      });
      ws.once("error", () => resolve(null));
      ws.on("error", () => {});
    });
  }

  /** WebSocket messages before and after a hello; then closes. */
  private async wsMessages(afterHello: boolean, binary: boolean): Promise<void> {
    const ws = await this.wsOpen();
    if (!ws) return;
    try {
      if (afterHello) {
        ws.send(JSON.stringify(this.hello()));
        await within(new Promise((r) => ws.once("message", r)), 2000);
      }
      const n = 1 + this.rng.int(12);
      for (let i = 0; i < n && ws.readyState === ws.OPEN; i++) {
        if (binary) ws.send(this.rng.chance(0.6) ? this.resultFrame() : this.rng.bytes(this.rng.int(4096)));
        else ws.send(this.textMessage());
      }
      await sleep(this.rng.int(200));
    } finally {
      ws.terminate();
    }
  }

  /** A mutated hello: accepted (it is then a worker like any) or refused. */
  private async wsMutatedHello(): Promise<void> {
    const ws = await this.wsOpen();
    if (!ws) return;
    try {
      ws.send(JSON.stringify(mutateJson(this.rng, this.hello())) ?? "null");
      ws.send(this.resultFrame());
      await within(new Promise((r) => ws.once("close", r)), 300);
    } finally {
      ws.terminate();
    }
  }

  /** A message over --max-frame-mb, before or after hello: the coordinator closes with 1009. */
  private async wsOversized(): Promise<void> {
    const ws = await this.wsOpen();
    if (!ws) return;
    try {
      if (this.rng.chance(0.5)) ws.send(JSON.stringify(this.hello()));
      const closed = new Promise<number>((r) => ws.once("close", (code) => r(code)));
      ws.send(Buffer.alloc(MAX_FRAME_MB * 1024 * 1024 + 1 + this.rng.int(1024)));
      const code = await within(closed, 5000);
      if (code === "timeout") this.found.serverErrors.push("an oversized message did not get its connection closed within 5 s");
    } finally {
      ws.terminate();
    }
  }

  /** Many messages at once after a hello: the rate limit closes the connection. */
  private async wsFlood(): Promise<void> {
    const ws = await this.wsOpen();
    if (!ws) return;
    try {
      ws.send(JSON.stringify(this.hello()));
      // Valid messages (errors for shards it never had), so that the rate limit, not the malformed count, ends it.
      const msg = JSON.stringify({ type: "shard_error", shardId: "s", jobId: this.jobId, code: "E_INFERENCE", message: "fuzz" });
      for (let i = 0; i < 1500 && ws.readyState === ws.OPEN; i++) ws.send(msg);
      await within(new Promise((r) => ws.once("close", r)), 3000);
    } finally {
      ws.terminate();
    }
  }

  /** A raw TCP connection, resolved once connected. */
  private tcp(): Promise<net.Socket | null> {
    return new Promise((resolve) => {
      const s = net.connect(port, host);
      s.once("connect", () => resolve(s));
      s.on("error", () => resolve(null));
    });
  }

  /** Upgrades a raw socket to WebSocket by hand; resolves once the 101 is in. */
  private async rawWs(): Promise<net.Socket | null> {
    const s = await this.tcp();
    if (!s) return null;
    s.write(`GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    const ok = await within(
      new Promise<boolean>((resolve) => {
        let got = "";
        s.on("data", (d: Buffer) => {
          got += d.toString("latin1");
          if (got.includes("\r\n\r\n")) resolve(got.startsWith("HTTP/1.1 101"));
        });
        s.once("close", () => resolve(false));
      }),
      2000,
    );
    if (ok !== true) {
      s.destroy();
      return null;
    }
    return s;
  }

  /** Broken WebSocket framing on a raw socket. */
  private async wsRawFrames(): Promise<void> {
    const s = await this.rawWs();
    if (!s) return;
    try {
      if (this.rng.chance(0.5)) s.write(wsFrame(1, Buffer.from(JSON.stringify(this.hello()))));
      const r = this.rng;
      const make = r.pick<() => Buffer>([
        () => r.bytes(1 + r.int(64)),
        () => wsFrame(1, Buffer.from([0xc3, 0x28, 0xff])), // invalid UTF-8 text
        () => wsFrame(2, r.bytes(16), { rsv: 1 + r.int(7) }), // reserved bits
        () => wsFrame(2, r.bytes(16), { mask: false }), // unmasked client frame
        () => wsFrame(9, r.bytes(200)), // control frame over 125 bytes
        () => wsFrame(9, r.bytes(4), { fin: false }), // fragmented control frame
        () => wsFrame(0, r.bytes(8)), // continuation with no start
        () => wsFrame(3 + r.int(5), r.bytes(8)), // reserved opcode
        () => wsFrame(2, r.bytes(8), { claimed: 1n << 40n }), // a length far over the limit
        () => wsFrame(2, r.bytes(8), { claimed: (1n << 63n) + 5n }), // a length over 2^63
        () => wsFrame(8, Buffer.from([0x03, 0xe7, 0xff])), // close with a bad code and bad UTF-8
        () => Buffer.concat(Array.from({ length: 50 }, () => wsFrame(9, Buffer.alloc(0)))), // ping storm
        () => wsFrame(2, this.resultFrame(), { fin: false }),
      ]);
      s.write(make());
      await within(new Promise((res) => s.once("close", res)), 300);
    } finally {
      s.destroy();
    }
  }

  private paths(getOnly: boolean): string[] {
    const job = getOnly ? this.jobId : "j_0000000000000000";
    return [
      "/", "/api/health", "/api/status", "/api/jobs", `/api/jobs/${job}`, `/api/jobs/${job}/outputs/logits`,
      `/api/jobs/${job}/outputs/..%2f..%2f..%2fedgepool.sqlite`, `/api/jobs/${job}/outputs/%2e%2e`, "/models/..%2fedgepool.sqlite",
      "/models/../edgepool.sqlite", "/../../../../etc/passwd", "/api/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd",
      "/api/jobs/%2e%2e%2f%2e%2e%2fedgepool.sqlite", "/api/models/%2e%2e", "/join/../../package.json", "/join/ort/..%2f..%2f..%2fpackage.json",
      "/dashboard.js/../../package.json", `/models/${this.sha}`, `/models/${this.sha}%2f..%2f..%2fedgepool.sqlite`, "/api/uploads/x",
      "/api/jobs/%E0%A4%A", `/api/jobs/${"a".repeat(3000)}`, "//api//jobs//", `/api/jobs/${job}?wait=-5`, "/api/join-qr.svg?url=javascript:alert(1)",
      `/api/join-qr.svg?url=http://x/${"a".repeat(3000)}`, "/metrics", "/api/report-data", "/api/models", "/api/uploads", `/api/models/${this.sha}`,
      "/api/jobs/j_0000000000000000/cancel", "/join", "/join/probe.onnx", "/api/%00", "/api/jobs/\u00e9",
    ];
  }

  private body(): { body: Uint8Array | string | undefined; type: string | undefined } {
    const r = this.rng;
    const type = r.pick([undefined, "application/json", "text/plain", "multipart/form-data; boundary=x", "application/octet-stream", "application/x-www-form-urlencoded", "application/json; charset=utf-16"]);
    const create = { model: this.sha, inputs: { x: "00000000-0000-0000-0000-000000000000" }, shardSize: 10 };
    const npy = Buffer.from(encodeNpy({ dtype: "float32", dims: [2, 64], data: new Float32Array(128) }));
    const body = r.pick<() => Uint8Array | string | undefined>([
      () => undefined,
      () => r.bytes(r.int(2048)),
      () => "{not json",
      () => JSON.stringify(mutateJson(r, create)) ?? "",
      () => JSON.stringify(create),
      () => mutateBytes(r, npy),
      () => mutateBytes(r, catalogModel("mlp").build().subarray(0, 4096)),
      () => "[".repeat(100_000),
      () => JSON.stringify({ model: this.sha, inputs: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`i${i}`, "00000000-0000-0000-0000-00000000000" + (i % 10)])) }),
    ])();
    return { body, type };
  }

  private checkBody(what: string, status: number, text: string): void {
    if (status >= 500 && status !== 503) this.found.serverErrors.push(`${what} -> ${status} ${text.slice(0, 200)}`);
    if (text.includes("SQLite format 3") || /root:.*:0:0:/.test(text) || text.includes('"name": "edgepool"')) this.found.leaks.push(`${what} -> ${status}`);
  }

  /** Any method on any route with any body, by fetch. */
  private async httpFetch(): Promise<void> {
    const method = this.rng.pick(["GET", "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"]);
    const p = this.rng.pick(this.paths(method === "GET" || method === "HEAD"));
    const { body, type } = method === "GET" || method === "HEAD" ? { body: undefined, type: undefined } : this.body();
    const ac = new AbortController();
    const what = `${method} ${p} (${type ?? "no type"}, ${body === undefined ? "no body" : `${body.length} bytes`})`;
    const run = (async () => {
      const res = await fetch(`${url}${p}`, { method, signal: ac.signal, ...(body !== undefined ? { body: typeof body === "string" ? body : Buffer.from(body) } : {}), headers: type ? { "content-type": type } : {} });
      const text = await res.text();
      this.checkBody(what, res.status, text);
    })().catch(() => {});
    const r = await within(run, 4000);
    ac.abort();
    if (r === "timeout" && !p.includes("wait=")) this.count("http-fetch-timeout");
  }

  /** A malformed HTTP request on a raw socket; reads the answer until close. */
  private async httpRaw(): Promise<void> {
    const r = this.rng;
    const p = r.pick(this.paths(false));
    const req = r.pick<() => string | Buffer>([
      () => `${r.pick(["FOO", "G ET", "\u0000GET", "get", "CONNECT", "TRACE", "PRI", "GET\t"])} ${p} HTTP/1.1\r\nHost: x\r\n\r\n`,
      () => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\n`,
      () => `GET ${p}\r\n\r\n`,
      () => `GET ${p} HTTP/9.9\r\nHost: x\r\n\r\n`,
      () => `GET ${p} HTTP/1.1\r\nNoColonHere\r\n\r\n`,
      () => `GET ${p} HTTP/1.1\r\nHost: x\r\nX-Big: ${"a".repeat(20_000 + r.int(20_000))}\r\n\r\n`,
      () => `GET ${p} HTTP/1.1\r\n${Array.from({ length: 3000 }, (_, i) => `X-${i}: y`).join("\r\n")}\r\n\r\n`,
      () => `POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nContent-Length: 20\r\n\r\n{"a":1}`,
      () => `POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`,
      () => `POST /api/uploads HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n`,
      () => `POST /api/uploads HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n${"x".repeat(r.int(1000))}`, // truncated body, then EOF
      () => `POST /api/models HTTP/1.1\r\nHost: x\r\nContent-Length: 4096\r\n\r\n${"\u0008\u0007".repeat(100)}`,
      () => `POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n`,
      () => `POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n{}`,
      () => `POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9\r\n\r\n{"model":`,
      () => `GET ${p} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: !!\r\n\r\n`,
      () => `GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n`,
      // Request targets that no URL parser accepts, plain and as WebSocket upgrades.
      () => `GET ${r.pick(["//[", "http://[::1", "//a:99999999/", "/%", "/api/%zz"])} HTTP/1.1\r\nHost: x\r\n\r\n`,
      () => `GET ${r.pick(["//[", "http://[::1", "//a:99999999/", "/%"])} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\n\r\n`,
      () => r.bytes(1 + r.int(512)),
      () => mutateBytes(r, Buffer.from(`POST /api/jobs HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`)),
    ])();
    const s = await this.tcp();
    if (!s) return;
    let got = "";
    s.on("data", (d: Buffer) => (got += d.toString("latin1")));
    try {
      s.write(req);
      if (r.chance(0.7)) s.end();
      await within(new Promise((res) => s.once("close", res)), 3000);
    } finally {
      s.destroy();
    }
    const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(got)?.[1] ?? 0);
    this.checkBody(`raw ${JSON.stringify(req.toString().slice(0, 80))}`, status, got);
  }

  /** A connection left hanging on purpose: the coordinator must drop it by itself. */
  private async stall(): Promise<void> {
    if (this.found.stalled.length >= MAX_STALLED) return this.httpRaw();
    const entry = { what: "", closedAt: null as number | null, openedAt: Date.now() };
    const kind = this.rng.int(4);
    if (kind === 3) {
      // Upgraded, then silent (or half a frame): the hello timeout.
      const s = await this.rawWs();
      if (!s) return;
      entry.what = "websocket without hello";
      if (this.rng.chance(0.5)) s.write(wsFrame(1, Buffer.from(JSON.stringify(this.hello()))).subarray(0, 10));
      s.resume();
      s.once("close", () => (entry.closedAt = Date.now()));
      this.found.stalled.push(entry);
      return;
    }
    const s = await this.tcp();
    if (!s) return;
    // Read (and drop) what comes: a socket never read would not see the coordinator's FIN.
    s.resume();
    s.once("close", () => (entry.closedAt = Date.now()));
    if (kind === 0) entry.what = "silent TCP";
    else if (kind === 1) {
      entry.what = "half a request line";
      s.write("GET / HTTP/1.1\r\n");
    } else {
      entry.what = "dribbled headers";
      s.write("GET /api/status HTTP/1.1\r\nX-Slow: ");
      const drip = () => {
        if (s.destroyed || !s.writable) return;
        s.write("a");
        setTimeout(drip, 150).unref();
      };
      drip();
    }
    this.found.stalled.push(entry);
  }

  private readonly kinds: Array<[string, number, () => Promise<void>]> = [
    ["ws-binary-before-hello", 8, () => this.wsMessages(false, true)],
    ["ws-text-before-hello", 8, () => this.wsMessages(false, false)],
    ["ws-binary-after-hello", 10, () => this.wsMessages(true, true)],
    ["ws-text-after-hello", 10, () => this.wsMessages(true, false)],
    ["ws-mutated-hello", 8, () => this.wsMutatedHello()],
    ["ws-raw-frames", 10, () => this.wsRawFrames()],
    ["ws-flood", 1, () => this.wsFlood()],
    ["ws-oversized", 0.5, () => this.wsOversized()],
    ["http-fetch", 25, () => this.httpFetch()],
    ["http-raw", 18, () => this.httpRaw()],
    ["slow-handshake", 2, () => this.stall()],
  ];

  async one(): Promise<void> {
    const total = this.kinds.reduce((s, k) => s + k[1], 0);
    let x = this.rng.next() * total;
    for (const [name, w, run] of this.kinds) {
      x -= w;
      if (x < 0) {
        this.count(name);
        const r = await within(run().catch(() => {}), CASE_MS);
        if (r === "timeout") this.count(`${name}-timeout`);
        return;
      }
    }
  }
}

/** One job of the relay: its submit process, where it writes, and how it ended. */
interface RelayJob {
  n: number;
  submit: Proc;
  out: string;
  /** The coordinator's id for it, once listed. */
  id: string;
  code: number | null;
  /** Date.now() when listed as started, and at exit. */
  listedAt: number | null;
  exitedAt: number | null;
}

/**
 * Jobs back to back on one input file while `more()` holds when one ends. A job counts as
 * running from when the coordinator lists it as started until its submit exits; between jobs,
 * `whileRunning()` holds callers until the next one starts, so no case falls in the gap.
 */
class JobRelay {
  readonly jobs: RelayJob[] = [];
  /** The id of the job running now (or the last one). */
  current = "";
  /** The model's sha256, once the first job is listed. */
  sha = "";
  running = false;
  private ended = false;
  private failure: Error | null = null;
  private waiters: Array<() => void> = [];
  private readonly seen = new Set<string>();

  constructor(
    private readonly input: string,
    private readonly more: () => boolean,
  ) {}

  /**
   * Resolves while a job runs: at once, or when the next one starts; also once the relay has
   * ended (callers then find no case left). Rejects once a job has failed.
   */
  whileRunning(): Promise<void> {
    if (this.failure) return Promise.reject(this.failure);
    if (this.running || this.ended) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push(() => (this.failure ? reject(this.failure) : resolve())));
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }

  /** Runs jobs until `more()` is false as one ends; resolves once the last has exited. */
  async run(): Promise<void> {
    try {
      do {
        const n = this.jobs.length;
        const out = f(`out-${n}`);
        const submit = startProc(["submit", "--coordinator", url, "--model", "wide-mlp", "--input", `x=${this.input}`, "--out", out, "--shard-size", String(SHARD_SIZE), "--quiet"]);
        procs.push(submit);
        const exited = new Promise<number | null>((resolve) => submit.child.once("exit", (code) => resolve(code)));
        const job: RelayJob = { n, submit, out, id: "", code: null, listedAt: null, exitedAt: null };
        this.jobs.push(job);
        await this.listed(job, exited);
        job.listedAt = Date.now();
        this.running = true;
        this.wake();
        job.code = await exited;
        job.exitedAt = Date.now();
        this.running = false;
        if (job.code !== 0) throw new Error(`job ${n} (${job.id || "never listed"}): submit exited ${job.code}\n${submit.stderr()}`);
      } while (this.more());
    } catch (err) {
      this.failure = err instanceof Error ? err : new Error(String(err));
      throw this.failure;
    } finally {
      this.ended = true;
      this.wake();
    }
  }

  /** Waits until the coordinator lists a new job of ours as started (or already over). */
  private async listed(job: RelayJob, exited: Promise<number | null>): Promise<void> {
    let gone = false;
    void exited.then(() => (gone = true));
    const until = Date.now() + 30_000;
    while (Date.now() < until) {
      const s = (await (await fetch(`${url}/api/status`, { signal: AbortSignal.timeout(10_000) })).json()) as { jobs: Array<{ id: string; model: string; rows: number; state: string }> };
      const mine = s.jobs.find((j) => !this.seen.has(j.id) && j.rows === ROWS && (this.sha === "" || j.model === this.sha));
      if (mine && mine.state !== "queued") {
        this.seen.add(mine.id);
        job.id = mine.id;
        this.current = mine.id;
        this.sha = mine.model;
        return;
      }
      if (gone) throw new Error(`job ${job.n}: submit exited ${job.submit.child.exitCode} before its job started\n${job.submit.stderr()}`);
      await sleep(100);
    }
    throw new Error(`job ${job.n}: not started within 30 s\n${job.submit.stderr()}`);
  }
}

describe("a coordinator under fuzz while real jobs run", () => {
  it("survives thousands of hostile inputs with bounded memory, and the jobs' outputs are right", async () => {
    const tSetup = Date.now();
    const model = catalogModel("wide-mlp");
    const x = model.sampleInputs(ROWS, 7).x!;
    await writeNpyFile(f("x.npy"), x);
    const want = await runLocally(model.build(), "x", x, { chunk: 2048, threads: 1 });
    const referenceMs = Date.now() - tSetup;

    const pid = coordinator.child.pid!;
    let exited: string | null = null;
    // A coordinator that dies fails the test at once, not after a deadline.
    const gone = new Promise<"exited">((resolve) =>
      coordinator.child.once("exit", (code, signal) => {
        exited = `exited with ${code ?? signal}`;
        resolve("exited");
      }),
    );
    const idleRss = await rssOf(pid);

    let started = 0;
    let settled = 0;
    let withoutJob = 0;
    const relay = new JobRelay(f("x.npy"), () => started < CASES);
    const relayDone = relay.run();
    // Nothing is fuzzed before the first job runs; a failure shows up below, not as unhandled.
    relayDone.catch(() => {});
    await relay.whileRunning();

    const found: Findings = { cases: new Map(), serverErrors: [], leaks: [], fuzzShards: [], stalled: [], rss: [], healthFailures: [] };
    const t0 = Date.now();

    // Watchers: memory, health, and whether any fuzz connection ever completed a shard.
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        try {
          found.rss.push(await rssOf(pid));
        } catch (err) {
          found.healthFailures.push(`no /proc entry: ${String(err)}`);
        }
        try {
          const s = (await (await fetch(`${url}/api/status`, { signal: AbortSignal.timeout(10_000) })).json()) as { workers: Array<{ name: string; shardsDone: number }> };
          for (const w of s.workers) if (!REAL.has(w.name) && w.shardsDone > 0) found.fuzzShards.push(`${w.name}: ${w.shardsDone}`);
        } catch (err) {
          found.healthFailures.push(`status: ${String(err)}`);
        }
        await sleep(250);
      }
    })();

    const lanes = Promise.all(
      Array.from({ length: LANES }, async (_, lane) => {
        const laneFuzzer = new Fuzzer(new Rng((SEED + lane * 0x9e3779b9) >>> 0), () => relay.current, relay.sha, found);
        while (started < CASES) {
          await relay.whileRunning();
          if (started >= CASES) break;
          started += 1;
          if (!relay.running) withoutJob += 1;
          await laneFuzzer.one();
          settled += 1;
        }
      }),
    );
    const fuzz = await Promise.race([within(lanes, FUZZ_DEADLINE_MS), gone]);
    const fuzzMs = Date.now() - t0;
    const progress = () => `${settled} of ${CASES} cases settled (${started} started) after ${Date.now() - t0} ms; jobs ${JSON.stringify(relay.jobs.map((j) => ({ id: j.id, code: j.code })))}`;
    expect(exited, `the coordinator died during the fuzz: ${progress()}`).toBeNull();
    expect(fuzz, `the fuzz missed its ${FUZZ_DEADLINE_MS} ms deadline, so the coordinator stopped answering: ${progress()}`).not.toBe("timeout");

    // Every stalled connection is dropped by the coordinator, not by us.
    const lastOpened = Math.max(0, ...found.stalled.map((s) => s.openedAt));
    while (found.stalled.some((s) => s.closedAt === null) && Date.now() - lastOpened < Math.max(HEADERS_TIMEOUT_MS, HELLO_TIMEOUT_MS) + 8000) await sleep(100);

    const last = await Promise.race([within(relayDone, LAST_JOB_DEADLINE_MS), gone]);
    expect(exited, `the coordinator died after the fuzz: ${progress()}`).toBeNull();
    expect(last, `the last job did not end within ${LAST_JOB_DEADLINE_MS} ms of the fuzz: ${progress()}`).not.toBe("timeout");
    // How long the job still running at the end kept the test waiting.
    const tailMs = Math.max(0, (relay.jobs.at(-1)?.exitedAt ?? Date.now()) - (t0 + fuzzMs));
    watching = false;
    await watcher;

    // For a look at what the coordinator made of it all: EDGEPOOL_FUZZ_LOG=<file>.
    if (process.env.EDGEPOOL_FUZZ_LOG) await writeFile(process.env.EDGEPOOL_FUZZ_LOG, coordinator.stdout() + coordinator.stderr());
    const byKind = Object.fromEntries([...found.cases].sort());
    // Gaps: lanes held between one job's end and the next one's start.
    const gapsMs = relay.jobs.slice(1).map((j, i) => (j.listedAt ?? 0) - (relay.jobs[i]!.exitedAt ?? 0));
    console.log(
      `fuzz seed ${SEED}: ${settled} cases in ${fuzzMs} ms over ${relay.jobs.length} job(s) (held ${JSON.stringify(gapsMs)} ms between jobs; ` +
        `the last ended ${tailMs} ms after the last case; local reference run ${referenceMs} ms), by kind ${JSON.stringify(byKind)}`,
    );
    console.log(`coordinator RSS idle ${Math.round(idleRss / 2 ** 20)} MiB, max ${Math.round(Math.max(...found.rss) / 2 ** 20)} MiB over ${found.rss.length} samples; ${found.stalled.length} stalled connections`);

    expect(exited).toBeNull();
    expect(coordinator.child.exitCode).toBeNull();
    expect(started).toBe(CASES);
    expect(settled).toBe(CASES);
    expect(withoutJob).toBe(0);
    expect(found.serverErrors).toEqual([]);
    expect(found.leaks).toEqual([]);
    expect(found.fuzzShards).toEqual([]);
    expect(found.healthFailures).toEqual([]);
    expect(found.rss.length).toBeGreaterThan(10);
    expect(Math.max(...found.rss)).toBeLessThan(idleRss + RSS_HEADROOM);
    expect(found.stalled.filter((s) => s.closedAt === null).map((s) => s.what)).toEqual([]);

    expect(relay.jobs.length).toBeGreaterThanOrEqual(1);
    for (const job of relay.jobs) {
      expect(job.code, job.submit.stderr()).toBe(0);
      const got = await readNpyFile(path.join(job.out, "logits.npy"));
      expect(got.dims).toEqual([ROWS, 10]);
      expect(maxAbsDiff(got, want.out as Tensor)).toBeLessThanOrEqual(1e-5);
    }

    const health = await fetch(`${url}/api/health`);
    expect(health.status).toBe(200);
    // Only the real workers ever completed a shard, connected or gone.
    const report = (await (await fetch(`${url}/api/report-data`)).json()) as { workers: Array<{ name: string; perModel: Array<{ shards: number }> }> };
    const working = report.workers.filter((w) => w.perModel.some((m) => m.shards > 0)).map((w) => w.name);
    expect(new Set(working)).toEqual(REAL);
    // Floods met the rate limit.
    if ((found.cases.get("ws-flood") ?? 0) > 0) expect(coordinator.stdout()).toMatch(/"code":"E_RATE_LIMIT"/);
    // Nothing a peer sent made a request fail inside the coordinator.
    expect(coordinator.stdout().split("\n").filter((l) => /"msg":"(request failed|upgrade failed)"/.test(l))).toEqual([]);
    // Above the sum of the deadlines, so that one of them fails first, with its message.
  }, 240_000);
});
