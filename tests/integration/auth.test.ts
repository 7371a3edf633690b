/**
 * Tokens and roles, end to end through real processes: workers without the worker token are
 * refused before their WebSocket opens, clients see only their own jobs (another client's
 * job is a 404), an admin sees and cancels everything, and no token ever reaches the
 * coordinator's log. Also: a non-loopback coordinator without tokens refuses to start
 * unless given --insecure, and a data directory from before owners existed still opens.
 */
import { randomBytes } from "node:crypto";
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import Database from "better-sqlite3";
import { errorOf } from "../harness/errors.js";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { CoordinatorClient } from "../../coordinator/client/client.js";
import { JobDb } from "../../coordinator/jobs/job-db.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { readNpyFile, writeNpyFile } from "../../shared/node/npy-file.js";
import { seededNormal } from "../../shared/onnx/builder.js";
import { maxAbsDiff } from "../../shared/tensor/tensor-ops.js";
import type { Tensor } from "../../shared/tensor/tensor.js";
import { runLocally } from "../../worker/local-run.js";
import { type Proc, runCli, startCoordinator, startProc, startWorker, tempDir } from "../../harness/procs.js";

const token = (what: string) => `${what}-${randomBytes(16).toString("hex")}`;
const WORKER = token("worker");
const ALICE = token("alice");
const BOB = token("bob");
const ADMIN = token("admin");
const WRONG = token("wrong");
const SECRETS = [WORKER, ALICE, BOB, ADMIN, WRONG];

let tmp: Awaited<ReturnType<typeof tempDir>>;
let coordinator: Proc;
let url: string;
const started: Proc[] = [];
const f = (name: string) => path.join(tmp.dir, name);

const alice = () => new CoordinatorClient(url, { token: ALICE });
const bob = () => new CoordinatorClient(url, { token: BOB });
const admin = () => new CoordinatorClient(url, { token: ADMIN });


/** A raw request, for what the client SDK does not send (no token, a token in the query). */
async function rawStatus(pathAndQuery: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const res = await fetch(`${url}${pathAndQuery}`, { headers });
  return { status: res.status, body: await res.text() };
}

/** The first snapshot of the dashboard feed, as the given token sees it (token in the query, as a browser sends it). */
async function firstSnapshot(tok: string): Promise<{ jobs: { listed: Array<{ id: string }> } }> {
  const ac = new AbortController();
  const res = await fetch(`${url}/api/events?token=${encodeURIComponent(tok)}`, { signal: ac.signal });
  expect(res.status).toBe(200);
  const reader = res.body!.getReader();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    text += Buffer.from(value).toString("utf8");
    const m = /event: snapshot\ndata: (.*)\n\n/.exec(text);
    if (m) {
      ac.abort();
      return JSON.parse(m[1]!) as { jobs: { listed: Array<{ id: string }> } };
    }
  }
  throw new Error(`no snapshot in ${text}`);
}

beforeAll(async () => {
  tmp = await tempDir("auth");
  await writeFile(
    f("tokens.json"),
    JSON.stringify({ tokens: [{ token: ALICE, role: "client", name: "alice" }, { token: BOB, role: "client", name: "bob" }] }),
  );
  // Every way of giving a token: a flag (workers), a variable (admin), a file (clients).
  // Debug logging, so that even per-shard lines are checked for secrets.
  ({ proc: coordinator, url } = await startCoordinator(
    ["--port", "0", "--data-dir", f("c"), "--worker-token", WORKER, "--tokens-file", f("tokens.json"), "--log-level", "debug"],
    { EDGEPOOL_ADMIN_TOKEN: ADMIN },
  ));
  await writeNpyFile(f("x.npy"), { dtype: "float32", dims: [300, 256], data: seededNormal(5, 300 * 256, 1) });
});

afterAll(async () => {
  await Promise.all(started.map((p) => p.stop("SIGKILL")));
  await coordinator?.stop();
  await tmp?.remove();
});

describe("workers need the worker token", () => {
  it("refuses a worker with no token with HTTP 401 before the WebSocket opens; it keeps retrying and never joins", async () => {
    const w = startProc(["worker", "--coordinator", url.replace("http", "ws"), "--name", "no-token", "--state-dir", f("w-none")]);
    started.push(w);
    const line = await coordinator.waitFor(/\{[^\n]*"code":"E_AUTH"[^\n]*"worker refused: bad or missing token"[^\n]*\}/);
    expect(JSON.parse(line[0])).toMatchObject({ level: 40, code: "E_AUTH" });
    await w.waitFor(/"code":"E_AUTH"[^\n]*requires a worker token \(HTTP 401\); pass it with --token or set EDGEPOOL_TOKEN/);
    expect(w.child.exitCode).toBeNull();
    await w.stop();
  });

  it("refuses a wrong token (401) and a client token (403)", async () => {
    const wrong = startProc(["worker", "--coordinator", url.replace("http", "ws"), "--name", "wrong-token", "--state-dir", f("w-wrong"), "--token", WRONG]);
    const client = startProc(["worker", "--coordinator", url.replace("http", "ws"), "--name", "client-token", "--state-dir", f("w-client")], { EDGEPOOL_TOKEN: ALICE });
    started.push(wrong, client);
    await wrong.waitFor(/"code":"E_AUTH"[^\n]*does not accept this worker's token/);
    await client.waitFor(/"code":"E_FORBIDDEN"[^\n]*\(HTTP 403\)/);
    await coordinator.waitFor(/"code":"E_FORBIDDEN"[^\n]*"worker refused: bad or missing token"/);
    // A raw dial with a wrong token in the query (as a browser could send it) is refused too.
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(`${url.replace("http", "ws")}/?token=${WRONG}`);
      ws.on("unexpected-response", (_req, res) => {
        resolve(res.statusCode ?? 0);
        ws.terminate();
      });
      ws.on("open", () => reject(new Error("a wrong token opened a WebSocket")));
      ws.on("error", () => undefined);
    });
    expect(status).toBe(401);
    const s = await admin().status();
    expect(s.workers).toEqual([]);
    await Promise.all([wrong.stop(), client.stop()]);
  });
});

describe("clients see their own jobs", () => {
  let queued: string;

  it("a job created while no worker can run it belongs to its creator alone", async () => {
    const a = alice();
    const model = await a.uploadModel(catalogModel("mlp").build());
    const up = await a.uploadNpy(f("x.npy"));
    queued = (await a.createJob({ model: model.sha256, inputs: { x: up.id } })).id;
    expect((await a.job(queued)).state).toBe("queued");
    expect((await a.status()).jobs.map((j) => j.id)).toEqual([queued]);

    // Bob: the job does not exist for him, whatever he tries.
    const b = bob();
    expect((await errorOf(b.job(queued))).code).toBe("E_NOT_FOUND");
    expect((await errorOf(b.cancel(queued))).code).toBe("E_NOT_FOUND");
    expect((await b.status()).jobs).toEqual([]);
    const listed = await rawStatus("/api/jobs", { authorization: `Bearer ${BOB}` });
    expect(JSON.parse(listed.body)).toEqual({ jobs: [] });
    expect((await firstSnapshot(BOB)).jobs.listed).toEqual([]);
    expect((await firstSnapshot(ALICE)).jobs.listed.map((j) => j.id)).toEqual([queued]);

    // The admin sees it and cancels it.
    expect((await admin().status()).jobs.map((j) => j.id)).toContain(queued);
    expect((await admin().cancel(queued)).state).toBe("cancelled");
    expect((await a.job(queued)).state).toBe("cancelled");
  });

  it("submit without a token fails with E_AUTH and says what to do", async () => {
    const r = await runCli(["submit", "--coordinator", url, "--model", "mlp", "--input", `x=${f("x.npy")}`, "--out", f("out-none")]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^edgepool submit: error: this coordinator requires a token for POST \/api\/models; pass --token <token> or set EDGEPOOL_TOKEN.* \[E_AUTH\]$/m);
    const wrong = await runCli(["submit", "--coordinator", url, "--token", WRONG, "--model", "mlp", "--input", `x=${f("x.npy")}`, "--out", f("out-wrong")]);
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toMatch(/does not accept this token.*\[E_AUTH\]/);
    // The HTTP status behind it.
    expect((await rawStatus("/api/status")).status).toBe(401);
    expect((await rawStatus("/api/status", { authorization: `Bearer ${WRONG}` })).status).toBe(401);
    // A token in the query is only taken where a browser cannot send a header (the event feed).
    expect((await rawStatus(`/api/status?token=${ALICE}`)).status).toBe(401);
  });

  it("a worker with the token joins, runs alice's job, and only alice and the admin can read its outputs", async () => {
    const w = await startWorker(coordinator, url, "good", f("w-good"), ["--token", WORKER]);
    started.push(w);
    const out = f("out-alice");
    const r = await runCli(["submit", "--coordinator", url, "--token", ALICE, "--model", "mlp", "--input", `x=${f("x.npy")}`, "--out", out, "--quiet"]);
    expect(r.code, r.stderr).toBe(0);
    const id = /job (j_[0-9a-z]+) done/.exec(r.stdout)?.[1];
    expect(id).toBeDefined();
    const got = await readNpyFile(path.join(out, "logits.npy"));
    const x = await readNpyFile(f("x.npy"));
    const want = await runLocally(catalogModel("mlp").build(), "x", x as Tensor, { chunk: 300, threads: 1 });
    expect(got.dims).toEqual([300, 10]);
    expect(maxAbsDiff(got, want.out)).toBeLessThanOrEqual(1e-5);

    expect((await errorOf(bob().downloadOutput(id!, "logits", f("bob.npy")))).code).toBe("E_NOT_FOUND");
    expect((await errorOf(bob().job(id!))).code).toBe("E_NOT_FOUND");
    // Cancelling a finished job is a state error for those who may see it, a 404 for others.
    expect((await errorOf(bob().cancel(id!))).code).toBe("E_NOT_FOUND");
    expect((await errorOf(alice().cancel(id!))).code).toBe("E_STATE");
    await admin().downloadOutput(id!, "logits", f("admin.npy"));
    expect(Buffer.compare(await readFile(f("admin.npy")), await readFile(path.join(out, "logits.npy")))).toBe(0);

    const s = await admin().status();
    expect(s.workers.map((x) => x.name)).toEqual(["good"]);
    expect(s.jobs.map((j) => j.id).sort()).toEqual([id!, queued].sort());
    expect((await alice().status()).jobs.map((j) => j.id).sort()).toEqual([id!, queued].sort());
    expect((await bob().status()).jobs).toEqual([]);
  });

  it("roles: workers fetch models but not status, clients cannot read /metrics, the admin can", async () => {
    const s = await admin().status();
    expect(s.workers).toHaveLength(1);
    const asWorker = { authorization: `Bearer ${WORKER}` };
    const sha = (await alice().uploadModel(catalogModel("mlp").build())).sha256;
    expect((await fetch(`${url}/models/${sha}`, { headers: asWorker })).status).toBe(200);
    expect((await rawStatus(`/models/${sha}`, { authorization: `Bearer ${ALICE}` })).status).toBe(403);
    expect((await rawStatus(`/models/${sha}`)).status).toBe(401);
    const forbidden = await rawStatus("/api/status", asWorker);
    expect(forbidden.status).toBe(403);
    expect(JSON.parse(forbidden.body)).toMatchObject({ error: { code: "E_FORBIDDEN" } });
    expect((await rawStatus("/metrics", { authorization: `Bearer ${ALICE}` })).status).toBe(403);
    const metrics = await rawStatus("/metrics", { authorization: `Bearer ${ADMIN}` });
    expect(metrics.status).toBe(200);
    expect(metrics.body).toContain("edgepool_shards_completed_total");
    // Public: the dashboard page and the health check.
    expect((await rawStatus("/")).status).toBe(200);
    expect((await rawStatus("/api/health")).status).toBe(200);
  });

  it("the coordinator's whole log never holds a token", async () => {
    await coordinator.stop();
    const log = coordinator.stdout() + coordinator.stderr();
    expect(log).toContain("worker refused: bad or missing token");
    expect(log).toContain('"worker":"good"');
    expect(log).toContain("shard"); // debug lines were written
    for (const secret of SECRETS) expect(log).not.toContain(secret);
  });
});

describe("exposure", () => {
  it("refuses to listen on 0.0.0.0 without tokens, and starts with --insecure", async () => {
    const r = await runCli(["coordinator", "--host", "0.0.0.0", "--port", "0", "--data-dir", f("open")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/invalid --host: 0\.0\.0\.0 is reachable from other machines and no tokens are configured.*--insecure.*\[E_CONFIG\]/);
    const { proc: open, url: openUrl, listening } = await startCoordinator(["--host", "0.0.0.0", "--port", "0", "--data-dir", f("open"), "--insecure"]);
    started.push(open);
    expect(listening.tokens).toBe("none (open pool)");
    // An open pool: no token needed.
    expect((await new CoordinatorClient(openUrl).status()).jobs).toEqual([]);
    expect(await open.stop()).toBe(0);
  });

  it("refuses a short token and a token file with an unknown role, without echoing the token", async () => {
    const short = await runCli(["coordinator", "--port", "0", "--data-dir", f("short"), "--worker-token", "abc123"]);
    expect(short.code).toBe(2);
    expect(short.stderr).toMatch(/invalid --worker-token: a token must be at least 16 characters/);
    expect(short.stderr).not.toContain("abc123");
    await writeFile(f("bad-tokens.json"), JSON.stringify({ tokens: [{ token: ALICE, role: "superuser" }] }));
    const bad = await runCli(["coordinator", "--port", "0", "--data-dir", f("bad"), "--tokens-file", f("bad-tokens.json")]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid --tokens-file: .*bad-tokens\.json: tokens\.0\.role/);
    expect(bad.stderr).not.toContain(ALICE);
  });
});

describe("job database", () => {
  it("opens a database made before jobs had owners; old jobs belong to nobody", async () => {
    const file = f("old.sqlite");
    const old = new Database(file);
    old.exec(`
      CREATE TABLE models (sha256 TEXT PRIMARY KEY, bytes INTEGER NOT NULL, info TEXT NOT NULL, created_at INTEGER NOT NULL);
      CREATE TABLE jobs (id TEXT PRIMARY KEY, model TEXT NOT NULL REFERENCES models(sha256), state TEXT NOT NULL, rows INTEGER NOT NULL,
        inputs TEXT NOT NULL, outputs TEXT, error TEXT, created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER,
        samples_done INTEGER NOT NULL DEFAULT 0, shards_done INTEGER NOT NULL DEFAULT 0, shard_count INTEGER NOT NULL DEFAULT 0,
        next_row INTEGER NOT NULL DEFAULT 0, fixed_shard_size INTEGER);
      INSERT INTO models VALUES ('${"a".repeat(64)}', 1, '{}', 1);
      INSERT INTO jobs (id, model, state, rows, inputs, created_at) VALUES ('j_0000000000000001', '${"a".repeat(64)}', 'done', 4, '[]', 1);
    `);
    old.close();
    const db = new JobDb(file);
    try {
      expect(db.getJob("j_0000000000000001")?.owner).toBeNull();
      expect(db.listJobs(100).map((j) => j.id)).toEqual(["j_0000000000000001"]);
      expect(db.listJobs(100, "alice")).toEqual([]);
    } finally {
      db.close();
    }
  });
});
