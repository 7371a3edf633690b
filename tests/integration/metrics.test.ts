/**
 * GET /metrics on a real coordinator process with two real workers, scraped before, during
 * and after a job and parsed with a Prometheus text-format parser. Every figure is checked
 * against what the job itself says: shards, rows, FLOPs (rows x the model's FLOPs per sample).
 */
import path from "node:path";
import parsePrometheusTextFormat from "parse-prometheus-text-format";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { CoordinatorClient, type JobView } from "../../coordinator/client/client.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { writeNpyFile } from "../../shared/node/npy-file.js";
import { seededNormal } from "../../shared/onnx/builder.js";
import { type Proc, startCoordinator, startWorker, tempDir } from "../../harness/procs.js";

type Family = parsePrometheusTextFormat.PrometheusFamily;

/** Compute-dense with small inputs; workers capped so the job lasts long enough to scrape during it. */
const MODEL = "wide-mlp";
const CAP = ["--max-cpu", "20"];
const ROWS = 1200;
const SHARD_SIZE = 20;
const SHARDS = Math.ceil(ROWS / SHARD_SIZE);
/** wide-mlp: x [batch,64] float32 in, logits [batch,10] float32 out. */
const IN_ROW_BYTES = 64 * 4;
const OUT_ROW_BYTES = 10 * 4;

let tmp: Awaited<ReturnType<typeof tempDir>>;
let coordinator: Proc;
let url: string;
const workers: Proc[] = [];

beforeAll(async () => {
  tmp = await tempDir("metrics");
  ({ proc: coordinator, url } = await startCoordinator(["--port", "0", "--data-dir", path.join(tmp.dir, "coordinator"), "--log-level", "info"]));
});

afterAll(async () => {
  await Promise.all(workers.map((w) => w.stop()));
  await coordinator?.stop();
  await tmp?.remove();
});

interface Scrape {
  text: string;
  families: Map<string, Family>;
}

async function scrape(): Promise<Scrape> {
  const res = await fetch(`${url}/metrics`, { signal: AbortSignal.timeout(10_000) });
  expect(res.status).toBe(200);
  expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = await res.text();
  return { text, families: new Map(parsePrometheusTextFormat(text).map((f) => [f.name, f])) };
}

function family(s: Scrape, name: string): Family {
  const f = s.families.get(name);
  if (!f) throw new Error(`no metric ${name} in the scrape:\n${s.text}`);
  return f;
}

/** Series of `name` whose labels include every pair in `labels`. */
function series(s: Scrape, name: string, labels: Record<string, string> = {}): Array<{ labels: Record<string, string>; value: number }> {
  return family(s, name)
    .metrics.filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
    .map((m) => ({ labels: m.labels ?? {}, value: Number(m.value) }));
}

/** The value of the one series of `name` with `labels`; throws when there is not exactly one. */
function value(s: Scrape, name: string, labels: Record<string, string> = {}): number {
  const found = series(s, name, labels);
  if (found.length !== 1) throw new Error(`${found.length} series of ${name} with ${JSON.stringify(labels)}`);
  return found[0]!.value;
}

function sum(s: Scrape, name: string, labels: Record<string, string> = {}): number {
  return series(s, name, labels).reduce((a, x) => a + x.value, 0);
}

/**
 * One series of a labelled histogram. parse-prometheus-text-format 1.1 drops `_count` and
 * `_sum` of a histogram whose series carry labels besides `le`, and merges buckets across
 * label sets (yunyu/parse-prometheus-text-format#13), so the lines of the one series are
 * picked out and its selecting label removed before they go through the parser.
 */
function histogram(s: Scrape, name: string, label: string, labelValue: string): { count: number; sum: number; buckets: Array<[number, number]> } {
  const sel = `${label}="${labelValue}"`;
  const lines = s.text
    .split("\n")
    .filter((l) => l.startsWith(`# HELP ${name} `) || l.startsWith(`# TYPE ${name} `) || (l.startsWith(`${name}_`) && l.includes(sel)))
    .map((l) => l.replace(`,${sel}`, "").replace(`${sel},`, "").replace(`{${sel}}`, ""));
  const parsed = parsePrometheusTextFormat(`${lines.join("\n")}\n`);
  expect(parsed.map((f) => [f.name, f.type])).toEqual([[name, "HISTOGRAM"]]);
  const m = parsed[0]!.metrics[0]!;
  const buckets = Object.entries(m.buckets ?? {})
    .map(([le, n]): [number, number] => [le === "+Inf" ? Infinity : Number(le), Number(n)])
    .sort((a, b) => a[0] - b[0]);
  return { count: Number(m.count), sum: Number(m.sum), buckets };
}

/** Conventions every scrape must keep, whatever the state of the pool. */
function expectConventions(s: Scrape): void {
  const counters = [...s.families.values()].filter((f) => f.type === "COUNTER").map((f) => f.name);
  expect(counters.length).toBeGreaterThan(10);
  expect(counters.filter((n) => !n.endsWith("_total"))).toEqual([]);
  const ours = [...s.families.values()].filter((f) => f.name.startsWith("edgepool_"));
  expect(ours.filter((f) => f.help.length < 10).map((f) => f.name)).toEqual([]);
  expect(ours.filter((f) => f.type === "UNTYPED").map((f) => f.name)).toEqual([]);
}

describe("GET /metrics", () => {
  it("serves process metrics and zeroed pool counters before any work", async () => {
    const s = await scrape();
    expectConventions(s);
    expect(value(s, "process_resident_memory_bytes")).toBeGreaterThan(1024 * 1024);
    expect(family(s, "nodejs_eventloop_lag_seconds").type).toBe("GAUGE");
    expect(value(s, "nodejs_eventloop_lag_seconds")).toBeGreaterThanOrEqual(0);
    expect(family(s, "nodejs_heap_size_used_bytes").type).toBe("GAUGE");
    expect(family(s, "edgepool_workers").metrics).toEqual([]);
    for (const kind of ["real", "virtual"]) {
      expect(value(s, "edgepool_shards_completed_total", { kind })).toBe(0);
      expect(value(s, "edgepool_samples_completed_total", { kind })).toBe(0);
      expect(value(s, "edgepool_flops_completed_total", { kind })).toBe(0);
      expect(histogram(s, "edgepool_shard_duration_seconds", "kind", kind).count).toBe(0);
    }
    expect(value(s, "edgepool_shards_dispatched_total")).toBe(0);
    expect(value(s, "edgepool_network_sent_bytes_total")).toBe(0);
    expect(value(s, "edgepool_jobs", { state: "running" })).toBe(0);
    expect(value(s, "edgepool_jobs_finished_total", { state: "done" })).toBe(0);
    expect(family(s, "edgepool_shard_duration_seconds").help).toMatch(/round trip/);
  });

  it("counts connected workers by platform and state", async () => {
    for (const name of ["m1", "m2"]) workers.push(await startWorker(coordinator, url, name, path.join(tmp.dir, name), CAP));
    const s = await scrape();
    expect(sum(s, "edgepool_workers")).toBe(2);
    expect(series(s, "edgepool_workers")).toEqual([{ labels: { platform: process.platform, state: "idle" }, value: 2 }]);
  });

  it("moves its counters with the job's shards, and ends equal to its rows and FLOPs", async () => {
    const client = new CoordinatorClient(url);
    const model = await client.uploadModel(catalogModel(MODEL).build());
    expect(model.flopsPerSample).toBeGreaterThan(1e6);
    const input = path.join(tmp.dir, "x.npy");
    await writeNpyFile(input, { dtype: "float32", dims: [ROWS, 64], data: seededNormal(5, ROWS * 64, 1) });
    const upload = await client.uploadNpy(input);
    const before = await scrape();
    const created = await client.createJob({ model: model.sha256, inputs: { x: upload.id }, shardSize: SHARD_SIZE });

    // Scrape while the job runs; each scrape is one consistent snapshot of the coordinator.
    let finished: JobView | null = null;
    const done = client.waitForJob(created.id, { intervalMs: 50 }).then((j) => (finished = j));
    const during: Scrape[] = [];
    while (!finished) {
      const s = await scrape();
      const progress = series(s, "edgepool_job_progress_ratio", { job: created.id });
      if (progress.length === 1 && value(s, "edgepool_shards_completed_total", { kind: "real" }) > 0) during.push(s);
      await new Promise((r) => setTimeout(r, 30));
    }
    const job = await done;
    expect(job.state).toBe("done");
    expect(job.shardsDone).toBe(SHARDS);
    const after = await scrape();

    expect(during.length, "scrapes taken while the job ran with shards done").toBeGreaterThanOrEqual(2);
    let last = 0;
    for (const s of during) {
      expectConventions(s);
      const completed = value(s, "edgepool_shards_completed_total", { kind: "real" });
      expect(completed).toBeGreaterThanOrEqual(last);
      expect(completed).toBeLessThan(SHARDS);
      last = completed;
      const progress = value(s, "edgepool_job_progress_ratio", { job: created.id });
      expect(progress).toBeGreaterThan(0);
      expect(progress).toBeLessThan(1);
      expect(value(s, "edgepool_job_rows", { job: created.id })).toBe(ROWS);
      expect(value(s, "edgepool_samples_completed_total", { kind: "real" })).toBeCloseTo(progress * ROWS, 6);
      expect(histogram(s, "edgepool_shard_duration_seconds", "kind", "real").count).toBe(completed);
      expect(value(s, "edgepool_jobs", { state: "running" })).toBe(1);
      expect(sum(s, "edgepool_workers")).toBe(2);
    }
    const firstDuring = value(during[0]!, "edgepool_shards_completed_total", { kind: "real" });
    expect(value(during.at(-1)!, "edgepool_shards_completed_total", { kind: "real" })).toBeGreaterThan(firstDuring);

    expect(value(before, "edgepool_shards_completed_total", { kind: "real" })).toBe(0);
    expectConventions(after);
    expect(value(after, "edgepool_shards_completed_total", { kind: "real" })).toBe(SHARDS);
    expect(value(after, "edgepool_shards_completed_total", { kind: "virtual" })).toBe(0);
    expect(value(after, "edgepool_samples_completed_total", { kind: "real" })).toBe(ROWS);
    expect(value(after, "edgepool_samples_completed_total", { kind: "virtual" })).toBe(0);
    expect(value(after, "edgepool_flops_completed_total", { kind: "real" })).toBeCloseTo(ROWS * model.flopsPerSample, -3);
    expect(value(after, "edgepool_flops_completed_total", { kind: "virtual" })).toBe(0);
    expect(value(after, "edgepool_shards_dispatched_total")).toBeGreaterThanOrEqual(SHARDS);
    expect(value(after, "edgepool_shards_failed_total")).toBe(0);
    expect(value(after, "edgepool_network_sent_bytes_total")).toBeGreaterThan(ROWS * IN_ROW_BYTES);
    expect(value(after, "edgepool_network_received_bytes_total")).toBeGreaterThan(ROWS * OUT_ROW_BYTES);

    const h = histogram(after, "edgepool_shard_duration_seconds", "kind", "real");
    expect(h.count).toBe(SHARDS);
    expect(h.sum).toBeGreaterThan(0);
    expect(h.buckets.at(-1)).toEqual([Infinity, SHARDS]);
    expect(h.buckets.map(([le]) => le)).toEqual([0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, Infinity]);
    for (let i = 1; i < h.buckets.length; i++) expect(h.buckets[i]![1]).toBeGreaterThanOrEqual(h.buckets[i - 1]![1]);
    expect(histogram(after, "edgepool_shard_duration_seconds", "kind", "virtual").count).toBe(0);

    // The finished job leaves the per-job gauges; it is counted once as done.
    expect(series(after, "edgepool_job_progress_ratio")).toEqual([]);
    expect(series(after, "edgepool_job_rows")).toEqual([]);
    expect(value(after, "edgepool_jobs", { state: "running" })).toBe(0);
    expect(value(after, "edgepool_jobs", { state: "queued" })).toBe(0);
    expect(value(after, "edgepool_jobs_finished_total", { state: "done" })).toBe(1);
    expect(value(after, "edgepool_jobs_finished_total", { state: "failed" })).toBe(0);
    expect(series(after, "edgepool_workers")).toEqual([{ labels: { platform: process.platform, state: "idle" }, value: 2 }]);
  });
});
