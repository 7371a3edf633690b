/**
 * The API's views (coordinator/api/): each is built from real inputs by the coordinator's
 * builder and parsed with the schema the client parses it with. A parse that equals the
 * built value proves the schema names every field the server sends (zod drops unknown
 * ones) and that no default stands in for a missing one.
 */
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket, WebSocketServer } from "ws";
import { ErrorBodySchema } from "../../coordinator/api/errors.js";
import { InlineAnswerHeaderSchema, JobListViewSchema, JobViewSchema, jobView } from "../../coordinator/api/jobs.js";
import { ModelViewSchema, modelView } from "../../coordinator/api/models.js";
import { HealthViewSchema, StatusViewSchema } from "../../coordinator/api/status.js";
import { UploadViewSchema, uploadView } from "../../coordinator/api/uploads.js";
import { WorkerViewSchema, workerView } from "../../coordinator/api/workers.js";
import { CoordinatorClient } from "../../coordinator/client/client.js";
import { parseCoordinatorConfig } from "../../coordinator/config.js";
import { Coordinator } from "../../coordinator/coordinator.js";
import { JobDb, type ModelRow } from "../../coordinator/jobs/job-db.js";
import { ReportDataSchema } from "../../coordinator/report/report-data.js";
import { WorkerSession } from "../../coordinator/workers/session.js";
import { WsLink } from "../../coordinator/workers/gateway.js";
import { createLogger } from "../../shared/node/logger.js";
import { readNpyFileHeader, writeNpyFile } from "../../shared/node/npy-file.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { countFlops } from "../../shared/onnx/flops.js";
import { readModelInfo } from "../../shared/onnx/model-info.js";
import { helloMessage } from "../../shared/protocol/encode.js";
import { HelloSchema } from "../../shared/protocol/messages.js";
import { tempDir } from "../../harness/procs.js";

const MLP = catalogModel("mlp").build();
const SHA = "ab".repeat(32);

let tmp: Awaited<ReturnType<typeof tempDir>>;
/** A server-side socket of a real connection on loopback, as the gateway hands a session one. */
let serverSide: WebSocket;
let wss: WebSocketServer;
let peer: WebSocket;
beforeAll(async () => {
  tmp = await tempDir("api-views");
  wss = new WebSocketServer({ host: "127.0.0.1", port: 0 });
  await new Promise<void>((resolve) => wss.once("listening", () => resolve()));
  const accepted = new Promise<WebSocket>((resolve) => wss.once("connection", resolve));
  const address = wss.address();
  if (address === null || typeof address === "string") throw new Error(`unexpected address ${String(address)}`);
  peer = new WebSocket(`ws://127.0.0.1:${address.port}`);
  serverSide = await accepted;
});
afterAll(async () => {
  peer?.terminate();
  await new Promise<void>((resolve) => (wss ? wss.close(() => resolve()) : resolve()));
  await tmp?.remove();
});

function modelRow(): ModelRow {
  const info = readModelInfo(MLP);
  return { sha256: SHA, bytes: MLP.byteLength, info: { ...info, flopsPerSample: countFlops(MLP).flopsPerSample } };
}

/** A session the way the gateway makes one: a server-side socket, then a parsed hello. */
function session(name: string): WorkerSession {
  const s = new WorkerSession("c-1", new WsLink(serverSide), "127.0.0.1:5000", 1);
  s.markReady(HelloSchema.parse(
    JSON.parse(
      helloMessage({
        workerId: `${name}-id`, name, platform: "linux", arch: "arm64", cpus: 4, memoryBytes: 2e9,
        runtime: { name: "onnxruntime-node", version: "1.30.0" }, threads: 2, slots: 2, maxCpu: 50, backend: "cpu",
      }),
    ),
  ));
  // Two shards of 64 rows sent, one answered: the view's figures come from these.
  s.hold(64);
  s.hold(64);
  s.release();
  s.release();
  s.recordDone(SHA, 64, 120, 30);
  return s;
}

describe("the views the coordinator builds parse with the client's schemas", () => {
  it("a job: queued, then done with outputs", () => {
    const db = new JobDb(path.join(tmp.dir, "jobs.sqlite"));
    try {
      const m = modelRow();
      db.putModel(m.sha256, m.bytes, m.info);
      db.insertJob({
        id: "j_0000000000000001", model: SHA, rows: 8, createdAt: Date.now(), fixedShardSize: 4, owner: null,
        inputs: [{ name: "x", file: "in-0-x.npy", dtype: "float32", shape: [8, 256] }],
        verification: { redundancy: 2, rtol: 1e-4, atol: 1e-5, canaries: 0 },
      });
      const queued = jobView(db.getJob("j_0000000000000001")!);
      expect(JobViewSchema.parse(queued)).toEqual(queued);
      expect(queued).toMatchObject({ state: "queued", rows: 8, shardSize: 4, redundancy: 2, progress: 0, outputs: [] });

      db.setOutputs("j_0000000000000001", [{ name: "logits", file: "out-0-logits.npy", dtype: "float32", shape: [8, 10] }]);
      db.setState("j_0000000000000001", "done");
      const done = jobView(db.getJob("j_0000000000000001")!);
      expect(JobViewSchema.parse(done)).toEqual(done);
      expect(done.outputs).toEqual([{ name: "logits", dtype: "float32", shape: [8, 10] }]);
      // Neither a file path nor an owner reaches the view.
      expect(JSON.stringify(done)).not.toContain(".npy");
      expect(JobListViewSchema.parse({ jobs: [queued, done] })).toEqual({ jobs: [queued, done] });
      expect(InlineAnswerHeaderSchema.parse({ job: done })).toEqual({ job: done });
    } finally {
      db.close();
    }
  });

  it("a worker, from a session's public fields", () => {
    const v = workerView(session("phone-1"));
    expect(WorkerViewSchema.parse(v)).toEqual(v);
    expect(v).toMatchObject({
      id: "phone-1-id", name: "phone-1", state: "ready", busy: false, platform: "linux", arch: "arm64", cpus: 4, backend: "cpu",
      userAgent: null, slots: 2, maxCpu: 50, shardsDone: 1, samplesDone: 64, meanShardRows: 64, computeMs: 120, trust: 0.5,
      runtime: { name: "onnxruntime-node", version: "1.30.0" }, remote: "127.0.0.1:5000",
    });
    expect(v.samplesPerSec).toBeCloseTo((64 * 1000) / 120);
  });

  it("a worker before its hello", () => {
    const v = workerView(new WorkerSession("c-2", new WsLink(serverSide), "127.0.0.1:5001", 1));
    expect(WorkerViewSchema.parse(v)).toEqual(v);
    expect(v).toMatchObject({ id: "c-2", name: "c-2", state: "handshake", platform: "unknown", runtime: { name: "unknown", version: "unknown" } });
  });

  it("a model", () => {
    const v = modelView(modelRow());
    expect(ModelViewSchema.parse(v)).toEqual(v);
    expect(v.inputs.map((i) => i.name)).toEqual(["x"]);
    expect(v.flopsPerSample).toBeGreaterThan(0);
  });

  it("an upload, from a real .npy header; a dtype the API does not name is refused", async () => {
    const file = path.join(tmp.dir, "x.npy");
    await writeNpyFile(file, { dtype: "int64", dims: [3, 2], data: new BigInt64Array(6) });
    const h = await readNpyFileHeader(file);
    const v = uploadView({ id: "00000000-0000-0000-0000-000000000000", dtype: h.dtype, shape: h.shape, bytes: 128 });
    expect(UploadViewSchema.parse(v)).toEqual(v);
    expect(v).toEqual({ id: "00000000-0000-0000-0000-000000000000", dtype: "int64", shape: [3, 2], bytes: 128 });
    expect(() => uploadView({ id: "u", dtype: "complex64", shape: [1], bytes: 8 })).toThrow(/complex64/);
  });
});

describe("a coordinator's status, report data, health and errors", () => {
  let c: Coordinator;
  let client: CoordinatorClient;

  beforeAll(async () => {
    const log = createLogger({ name: "coordinator", level: "silent" });
    c = await Coordinator.start(parseCoordinatorConfig({ port: 0, dataDir: path.join(tmp.dir, "coordinator"), logLevel: "silent" }), log);
    client = new CoordinatorClient(c.url);
    // A worker that gets no work (quarantined), so the job below stays queued and the figures still.
    const laptop = session("laptop-1");
    laptop.quarantine("a test worker that must get no work");
    c.scheduler.addWorker(laptop);
    const model = await client.uploadModel(MLP);
    const file = path.join(tmp.dir, "in.npy");
    await writeNpyFile(file, { dtype: "float32", dims: [4, 256], data: new Float32Array(4 * 256) });
    const up = await client.uploadNpy(file);
    expect(UploadViewSchema.parse(up)).toEqual(up);
    expect(ModelViewSchema.parse(model)).toEqual(model);
    await client.createJob({ model: model.sha256, inputs: { x: up.id }, shardSize: 2 });
  });

  afterAll(async () => {
    await c?.close();
  });

  it("the status the server builds is the status the client reads", async () => {
    const built = c.status();
    expect(StatusViewSchema.parse(built)).toEqual(built);
    expect(built.workers.map((w) => w.name)).toEqual(["laptop-1"]);
    expect(built.jobs).toHaveLength(1);
    const read = await client.status();
    expect(read.workers).toEqual(built.workers);
    expect(read.jobs.map((j) => j.id)).toEqual(built.jobs.map((j) => j.id));
    expect(read.counters).toEqual(built.counters);
  });

  it("the report data", async () => {
    const built = c.reportData();
    expect(ReportDataSchema.parse(built)).toEqual(built);
    expect(built.jobs).toEqual([expect.objectContaining({ state: "queued", rows: 4, virtual: false })]);
    expect(built.models.map((m) => m.name)).toEqual(["mlp"]);
    expect((await client.reportData()).jobs).toEqual(built.jobs);
  });

  it("health and an error body", async () => {
    const health = await client.health();
    expect(HealthViewSchema.parse(health)).toEqual({ ok: true, version: expect.any(String), protocol: expect.any(Number) });
    const res = await fetch(`${c.url}/api/no-such-thing`);
    expect(res.status).toBe(404);
    expect(ErrorBodySchema.parse(await res.json())).toEqual({ error: { code: "E_NOT_FOUND", message: "no route GET /api/no-such-thing" } });
    const outside = await fetch(`${c.url}/nowhere`);
    expect(ErrorBodySchema.parse(await outside.json()).error.message).toBe("no route GET /nowhere; the API lives under /api");
  });
});
