/**
 * The coordinator's limits, each against a real coordinator process started with small ones:
 * uploads cut off as they stream (413 E_TOO_LARGE, no partial file left), a fixed shard size
 * that cannot fit a frame refused with the size that fits, active jobs per client (429
 * E_RATE_LIMIT, counted per owner), the WebSocket hello timeout, the message rate limit
 * (logged once), the frame limit, the pre-hello byte limit, the caps on handshaking and total
 * connections (503), HTTP header timeouts on raw sockets, and malformed URLs answered 400.
 */
import { randomBytes } from "node:crypto";
import { readdir, writeFile } from "node:fs/promises";
import http from "node:http";
import net from "node:net";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { CoordinatorClient } from "../../coordinator/client/client.js";
import { parseCoordinatorConfig } from "../../coordinator/config.js";
import { checkShardsFitFrame } from "../../coordinator/jobs/frame-fit.js";
import { TokenBucket } from "../../coordinator/workers/rate-limit.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { writeNpyFile } from "../../shared/node/npy-file.js";
import { seededNormal } from "../../shared/onnx/builder.js";
import { PROTOCOL_VERSION } from "../../shared/protocol/messages.js";
import { codeOf, errorOf } from "../harness/errors.js";
import { type Proc, startCoordinator, tempDir, waitForEvent } from "../../harness/procs.js";

const token = (what: string) => `${what}-${randomBytes(16).toString("hex")}`;
const WORKER = token("worker");
const ALICE = token("alice");
const BOB = token("bob");

const MAX_FRAME = 8 * 1024 * 1024;
const HELLO_TIMEOUT_MS = 700;
const HEADERS_TIMEOUT_MS = 1000;
const RATE = 50;

let tmp: Awaited<ReturnType<typeof tempDir>>;
let coordinator: Proc;
let url: string;
let dataDir: string;
const f = (name: string) => path.join(tmp.dir, name);
const alice = () => new CoordinatorClient(url, { token: ALICE });
const bob = () => new CoordinatorClient(url, { token: BOB });
const sockets: Array<WebSocket | net.Socket> = [];


function hello(name: string): string {
  return JSON.stringify({
    type: "hello", protocol: PROTOCOL_VERSION, workerId: `${name}-${randomBytes(4).toString("hex")}`, name, platform: "linux", arch: "x64",
    cpus: 1, memoryBytes: 1e9, runtime: { name: "test", version: "0" }, threads: 1, slots: 1,
  });
}

/** A WebSocket to the coordinator with the worker token; resolves once open, or with the HTTP status it was refused with. */
function dial(): Promise<{ ws: WebSocket } | { status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace("http", "ws"), { headers: { authorization: `Bearer ${WORKER}` } });
    sockets.push(ws);
    ws.once("open", () => resolve({ ws }));
    ws.once("unexpected-response", (_req, res) => {
      let body = "";
      res.on("data", (d: Buffer) => (body += d.toString()));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    ws.once("error", reject);
  });
}

async function open(): Promise<WebSocket> {
  const r = await dial();
  if (!("ws" in r)) throw new Error(`refused with ${r.status}: ${r.body}`);
  return r.ws;
}

/** Every text message until the socket closes, and its close code. */
function closing(ws: WebSocket): Promise<{ code: number; messages: string[]; ms: number }> {
  const t0 = Date.now();
  const messages: string[] = [];
  ws.on("message", (d, binary) => {
    if (!binary) messages.push(d.toString());
  });
  return new Promise((resolve) => ws.once("close", (code) => resolve({ code, messages, ms: Date.now() - t0 })));
}

/** Resolves after the coordinator's welcome. */
function welcomed(ws: WebSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    ws.once("message", (d) => (String(d).includes('"welcome"') ? resolve() : reject(new Error(`no welcome: ${String(d)}`))));
  });
}

/** A raw TCP connection to the coordinator; resolves when it is closed, with what was received and how long it took. */
function rawSocket(onConnect: (s: net.Socket) => void): Promise<{ data: string; ms: number }> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const t0 = Date.now();
    let data = "";
    const s = net.connect(Number(u.port), u.hostname, () => onConnect(s));
    sockets.push(s);
    s.on("data", (d) => (data += d.toString("latin1")));
    s.on("error", () => {});
    s.on("close", () => resolve({ data, ms: Date.now() - t0 }));
  });
}

beforeAll(async () => {
  tmp = await tempDir("limits");
  dataDir = f("coordinator");
  await writeFile(
    f("tokens.json"),
    JSON.stringify({ tokens: [{ token: WORKER, role: "worker" }, { token: ALICE, role: "client", name: "alice" }, { token: BOB, role: "client", name: "bob" }] }),
  );
  ({ proc: coordinator, url } = await startCoordinator([
    "--port", "0", "--data-dir", dataDir, "--tokens-file", f("tokens.json"),
    "--max-frame-mb", "8", "--max-model-mb", "1", "--max-input-gb", String(1 / 64),
    "--max-jobs-per-client", "2", "--max-messages-per-sec", String(RATE),
    "--max-workers", "6", "--max-handshakes", "3",
    "--hello-timeout", String(HELLO_TIMEOUT_MS), "--headers-timeout", String(HEADERS_TIMEOUT_MS),
  ]));
  await writeNpyFile(f("x.npy"), { dtype: "float32", dims: [64, 256], data: seededNormal(1, 64 * 256, 1) });
  // 17 MiB: over the 16 MiB input limit.
  await writeNpyFile(f("big.npy"), { dtype: "float32", dims: [4352, 1024], data: new Float32Array(4352 * 1024) });
  // 600 rows of 16 KiB in and out (the scale model): 508 fit an 8 MiB frame.
  await writeNpyFile(f("wide.npy"), { dtype: "float32", dims: [600, 4096], data: new Float32Array(600 * 4096) });
});

afterAll(async () => {
  for (const s of sockets) s instanceof WebSocket ? s.terminate() : s.destroy();
  await coordinator?.stop();
  await tmp?.remove();
});

describe("option checks", () => {
  it("refuses a headers timeout longer than the request timeout", () => {
    expect(codeOf(() => parseCoordinatorConfig({ headersTimeoutMs: 5000, requestTimeoutMs: 1000 }))).toBe("E_CONFIG");
    const c = parseCoordinatorConfig({ maxFrameMb: "8.5", maxModelMb: "0.5", maxInputGb: "2" });
    expect([c.maxFrameBytes, c.maxModelBytes, c.maxInputBytes]).toEqual([8.5 * 2 ** 20, 512 * 1024, 2 * 2 ** 30]);
    // Adaptive shards move up to 4 MiB: a smaller frame limit would refuse them.
    expect(() => parseCoordinatorConfig({ maxFrameMb: "4" })).toThrow(/invalid --max-frame-mb: at least 8/);
    const d = parseCoordinatorConfig({});
    expect([d.maxFrameBytes, d.maxJobsPerClient, d.maxMessagesPerSec, d.maxWorkers, d.maxHandshakes, d.headersTimeoutMs]).toEqual([256 * 2 ** 20, 16, 2000, 100_000, 1000, 10_000]);
  });

  it("a token bucket allows its burst, then its rate", () => {
    const b = new TokenBucket(10, 20, 0);
    let taken = 0;
    while (b.take(0)) taken++;
    expect(taken).toBe(20);
    expect(b.take(50)).toBe(false);
    expect(b.take(100)).toBe(true);
    expect(b.take(100)).toBe(false);
  });

  it("names the --shard-size that fits a frame", () => {
    expect(() => checkShardsFitFrame(1024, 40, 9000, MAX_FRAME)).toThrow(/use --shard-size 8128 or less/);
    expect(codeOf(() => checkShardsFitFrame(1024, 40, 8128, MAX_FRAME))).toBe("no error");
    expect(codeOf(() => checkShardsFitFrame(2 * MAX_FRAME, 40, null, MAX_FRAME))).toBe("E_TOO_LARGE");
  });
});

describe("uploads over the limits", () => {
  it("refuses a model over --max-model-mb by its Content-Length, with 413 E_TOO_LARGE", async () => {
    const err = await errorOf(alice().uploadModel(new Uint8Array(2 * 1024 * 1024)));
    expect(err.code).toBe("E_TOO_LARGE");
    expect(err.message).toMatch(/model upload of 2097152 bytes exceeds the limit of 1048576 bytes \(the coordinator's --max-model-mb\)/);
  });

  it("cuts off a streamed (chunked) model upload once it passes the limit, and removes the partial file", async () => {
    const u = new URL(url);
    let sent = 0;
    const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request({ host: u.hostname, port: u.port, path: "/api/models", method: "POST", headers: { authorization: `Bearer ${ALICE}`, "transfer-encoding": "chunked" } }, (r) => {
        let body = "";
        r.on("data", (d: Buffer) => (body += d.toString()));
        r.on("end", () => resolve({ status: r.statusCode ?? 0, body }));
        r.on("error", reject);
      });
      req.on("error", () => {});
      // 64 KiB chunks for up to 8 MiB, far past the 1 MiB limit, unless the answer comes first.
      const chunk = Buffer.alloc(64 * 1024, 7);
      const pump = () => {
        while (sent < 8 * 1024 * 1024 && !req.destroyed) {
          sent += chunk.byteLength;
          if (!req.write(chunk)) return void req.once("drain", pump);
        }
        req.end();
      };
      pump();
    });
    expect(res.status).toBe(413);
    expect(JSON.parse(res.body)).toMatchObject({ error: { code: "E_TOO_LARGE" } });
    // The coordinator stopped reading well before the end (socket buffers allow some slack).
    expect(sent).toBeLessThan(8 * 1024 * 1024);
    await expect.poll(async () => (await readdir(path.join(dataDir, "models"))).filter((n) => n.startsWith(".incoming-")), { timeout: 5000 }).toEqual([]);
  });

  it("refuses a streamed .npy upload over --max-input-gb with E_TOO_LARGE and leaves nothing behind", async () => {
    const err = await errorOf(alice().uploadNpy(f("big.npy")));
    expect(err.code).toBe("E_TOO_LARGE");
    expect(err.message).toMatch(/--max-input-gb/);
    await expect.poll(async () => (await readdir(path.join(dataDir, "uploads"))).filter((n) => n.startsWith(".incoming-")), { timeout: 5000 }).toEqual([]);
  });

  it("refuses a garbage or truncated .onnx with a clear 422 E_MODEL_INVALID", async () => {
    const garbage = await errorOf(alice().uploadModel(new TextEncoder().encode("this is not an ONNX model at all")));
    expect(garbage.code).toBe("E_MODEL_INVALID");
    expect(garbage.message).toMatch(/ONNX model could not be decoded/);
    const good = catalogModel("mlp").build();
    const truncated = await errorOf(alice().uploadModel(good.subarray(0, Math.floor(good.byteLength / 2))));
    expect(truncated.code).toBe("E_MODEL_INVALID");
    expect((await readdir(path.join(dataDir, "models"))).filter((n) => n.endsWith(".onnx"))).toEqual([]);
  });

  it("refuses a JSON body over 1 MiB with 413", async () => {
    const res = await fetch(`${url}/api/jobs`, { method: "POST", headers: { authorization: `Bearer ${ALICE}`, "content-type": "application/json" }, body: JSON.stringify({ pad: "x".repeat(2 * 1024 * 1024) }) });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("E_TOO_LARGE");
  });
});

describe("malformed requests", () => {
  it("answers a malformed URL escape with 400, not 500", async () => {
    const res = await fetch(`${url}/api/jobs/%E0%A4%A`, { headers: { authorization: `Bearer ${ALICE}` } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { code: string } }).error.code).toBe("E_BAD_REQUEST");
  });

  it("answers an upgrade to an unparseable URL with 400 and keeps running", async () => {
    const r = await rawSocket((s) => s.write("GET //[ HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"));
    expect(r.data).toMatch(/^HTTP\/1\.1 400 /);
    expect((await fetch(`${url}/api/health`)).status).toBe(200);
  });

  it("answers headers over 16 KiB with 431", async () => {
    const r = await rawSocket((s) => s.write(`GET /api/health HTTP/1.1\r\nHost: x\r\nX-Pad: ${"a".repeat(20_000)}\r\n\r\n`));
    expect(r.data).toMatch(/^HTTP\/1\.1 431 /);
  });
});

describe("slow handshakes", () => {
  it("drops a TCP connection that sends half a request line and stalls, after the headers timeout", async () => {
    const r = await rawSocket((s) => s.write("GET / HTTP/1.1\r\n"));
    expect(r.data).toMatch(/^HTTP\/1\.1 408 /);
    expect(r.ms).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 100);
    expect(r.ms).toBeLessThan(HEADERS_TIMEOUT_MS + 4000);
  });

  it("drops a connection that dribbles header bytes, however steadily", async () => {
    let timer: NodeJS.Timeout | undefined;
    const r = await rawSocket((s) => {
      s.write("GET /api/health HTTP/1.1\r\nX-Slow: ");
      timer = setInterval(() => s.writable && s.write("a"), 100);
    });
    clearInterval(timer);
    expect(r.ms).toBeLessThan(HEADERS_TIMEOUT_MS + 4000);
  });

  it("drops a connection that never sends a byte", async () => {
    const r = await rawSocket(() => {});
    expect(r.ms).toBeLessThan(HEADERS_TIMEOUT_MS + 4000);
  });

  it("closes a WebSocket that upgrades and then says nothing, after the hello timeout", async () => {
    const ws = await open();
    const c = await closing(ws);
    expect(c.code).toBe(1011);
    expect(c.messages.map((m) => JSON.parse(m) as { code: string })).toEqual([expect.objectContaining({ code: "E_TIMEOUT" })]);
    expect(c.ms).toBeGreaterThanOrEqual(HELLO_TIMEOUT_MS - 200);
    expect(c.ms).toBeLessThan(HELLO_TIMEOUT_MS + 4000);
  });
});

describe("WebSocket limits", () => {
  it("disconnects a connection over the message rate with E_RATE_LIMIT (1008), logged once", async () => {
    const ws = await open();
    const c = closing(ws);
    ws.send(hello("flooder"));
    await waitForEvent(coordinator, "workerJoined", (e) => e.name === "flooder");
    // Valid messages (errors for shards it never had), far faster than the rate.
    const msg = JSON.stringify({ type: "shard_error", shardId: "nope", jobId: "nope", code: "E_INFERENCE", message: "x" });
    for (let i = 0; i < 10 * RATE; i++) ws.send(msg);
    const { code, messages } = await c;
    expect(code).toBe(1008);
    expect(messages.some((m) => m.includes('"E_RATE_LIMIT"'))).toBe(true);
    await waitForEvent(coordinator, "workerLeft", (e) => e.name === "flooder");
    const lines = coordinator.stdout().split("\n").filter((l) => l.includes('"worker":"flooder"') && l.includes("E_RATE_LIMIT"));
    expect(lines).toHaveLength(1);
  });

  it("closes a connection that sends a message over --max-frame-mb with 1009", async () => {
    const ws = await open();
    const c = closing(ws);
    ws.send(hello("big-sender"));
    await welcomed(ws);
    ws.send(Buffer.alloc(MAX_FRAME + 1024));
    expect((await c).code).toBe(1009);
  });

  it("cuts off a connection that sends more than 64 KiB before its hello", async () => {
    const ws = await open();
    const c = closing(ws);
    ws.send(Buffer.alloc(256 * 1024));
    const { code } = await c;
    // Terminated without waiting for a close handshake: 1006 (or 1009 if the close frame made it).
    expect([1006, 1009]).toContain(code);
    await coordinator.waitFor(/more than 65536 bytes sent before a hello/);
  });

  it("refuses upgrades over --max-handshakes and --max-workers with 503", async () => {
    const silent = await Promise.all([open(), open(), open()]);
    const refused = await dial();
    expect(refused).toMatchObject({ status: 503 });
    expect("body" in refused && refused.body).toMatch(/--max-handshakes 3/);
    // Once they have said hello they no longer count as handshaking, but all count as connections.
    for (const ws of silent) {
      const w = welcomed(ws);
      ws.send(hello("cap"));
      await w;
    }
    const more = await Promise.all([open(), open(), open()]);
    for (const ws of more) {
      const w = welcomed(ws);
      ws.send(hello("cap"));
      await w;
    }
    const full = await dial();
    expect(full).toMatchObject({ status: 503 });
    expect("body" in full && full.body).toMatch(/the pool is full: 6 WebSocket connections \(--max-workers 6\)/);
    for (const ws of [...silent, ...more]) ws.close();
    await Promise.all([...silent, ...more].map((ws) => (ws.readyState === ws.CLOSED ? null : new Promise((r) => ws.once("close", r)))));
    // Room again once they have gone.
    await expect.poll(async () => "ws" in (await dial()), { timeout: 5000 }).toBe(true);
  });
});

describe("jobs per client", () => {
  it("refuses a fixed --shard-size whose frames would not fit, naming one that does", async () => {
    const scale = await alice().uploadModel(catalogModel("scale").build());
    const err = await errorOf(alice().createJob({ model: scale.sha256, inputs: { x: (await alice().uploadNpy(f("wide.npy"))).id }, shardSize: 10_000 }));
    expect(err.code).toBe("E_TOO_LARGE");
    // The shard size that matters is what the job can cut: 600 rows, not 10,000.
    expect(err.message).toMatch(/--shard-size 10000 makes frames of about 9830400 bytes \(16384 bytes a row\).* use --shard-size 508 or less/);
    // A shard size over the rows of a small job is no problem.
    const mlp = await alice().uploadModel(catalogModel("mlp").build());
    const ok = await alice().createJob({ model: mlp.sha256, inputs: { x: (await alice().uploadNpy(f("x.npy"))).id }, shardSize: 10_000 });
    await alice().cancel(ok.id);
  });

  it("refuses the same upload given for two inputs with 400", async () => {
    const model = await alice().uploadModel(catalogModel("transformer").build());
    const ids = f("ids.npy");
    await writeNpyFile(ids, { dtype: "int64", dims: [4, 16], data: new BigInt64Array(4 * 16) });
    const up = await alice().uploadNpy(ids);
    const err = await errorOf(alice().createJob({ model: model.sha256, inputs: { input_ids: up.id, attention_mask: up.id } }));
    expect(err.code).toBe("E_BAD_REQUEST");
    expect(err.message).toMatch(/given for two inputs/);
  });

  it("allows --max-jobs-per-client active jobs per owner, refuses the next with 429, and counts owners apart", async () => {
    const model = await alice().uploadModel(catalogModel("mlp").build());
    const create = async (c: CoordinatorClient) => c.createJob({ model: model.sha256, inputs: { x: (await c.uploadNpy(f("x.npy"))).id } });
    // No workers: the jobs stay queued, hence active.
    const first = await create(alice());
    await create(alice());
    const err = await errorOf(create(alice()));
    expect(err.code).toBe("E_RATE_LIMIT");
    expect(err.message).toMatch(/client 'alice' already has 2 queued or running jobs.*--max-jobs-per-client 2/);
    const raw = await fetch(`${url}/api/jobs`, { method: "POST", headers: { authorization: `Bearer ${ALICE}`, "content-type": "application/json" }, body: JSON.stringify({ model: model.sha256, inputs: { x: (await alice().uploadNpy(f("x.npy"))).id } }) });
    expect(raw.status).toBe(429);
    // Bob is another owner.
    expect((await create(bob())).state).toBe("queued");
    // A cancelled job no longer counts.
    await alice().cancel(first.id);
    expect((await create(alice())).state).toBe("queued");
  });
});

describe("afterwards", () => {
  it("is still healthy and logged no internal error for any of the above", async () => {
    expect((await fetch(`${url}/api/health`)).status).toBe(200);
    const errors = coordinator.stdout().split("\n").filter((l) => l.includes('"level":50') || l.includes('"level":60'));
    expect(errors).toEqual([]);
  });
});
