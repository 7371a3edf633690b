/**
 * Phones join from the browser: a real coordinator process and a Node worker, and /join
 * opened in headless Chromium (onnxruntime-web on WebAssembly: --disable-gpu leaves no
 * WebGPU adapter, so this also covers the fallback). Jobs run on both kinds of worker, and
 * the outputs are compared with a single-process onnxruntime-node run; a tab closed mid-job
 * loses nothing.
 */
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { CoordinatorClient, StatusViewSchema, type WorkerView } from "../../coordinator/client/client.js";
import { submitJob } from "../../coordinator/client/submit-job.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { readNpyFile, writeNpyFile } from "../../shared/node/npy-file.js";
import { seededNormal } from "../../shared/onnx/builder.js";
import { maxAbsDiff } from "../../shared/tensor/tensor-ops.js";
import type { Tensor } from "../../shared/tensor/tensor.js";
import { runLocally } from "../../worker/local-run.js";
import { hasChromium, launchChromium } from "../../harness/chromium.js";
import { eventsOf, startCoordinator, startWorker, tempDir, waitForEvent, type Proc } from "../../harness/procs.js";

if (!hasChromium && process.env.CI) throw new Error("CI must install chromium (see .ci/run)");

const ARTIFACTS = path.resolve("test-artifacts");
/** A phone-sized window (an iPhone 12-15 in CSS pixels). */
const PHONE = { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true };

let tmp: Awaited<ReturnType<typeof tempDir>>;
let coordinator: Proc;
let nodeWorker: Proc;
let url: string;
let client: CoordinatorClient;
let browser: Browser;
let context: BrowserContext;
/** Pages a test opened; closed after each test, so a failure does not leave a worker behind. */
const opened: Page[] = [];

/** The workers as GET /api/status lists them, parsed with the schema the coordinator builds them by. */
async function rawWorkers(): Promise<WorkerView[]> {
  const res = await fetch(`${url}/api/status`);
  expect(res.status).toBe(200);
  return StatusViewSchema.parse(await res.json()).workers;
}

/** Polls `check` (a status read, say) until it holds; fails after `timeoutMs`. */
async function until(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Opens /join as worker `name` and waits until the coordinator has it and the page says so. */
async function joinFromBrowser(name: string, query = "", init?: () => void): Promise<Page> {
  const page = await context.newPage();
  opened.push(page);
  if (init) await page.addInitScript(init);
  const problems: string[] = [];
  page.on("pageerror", (e) => problems.push(e.message));
  const nth = eventsOf(coordinator, "workerJoined", (e) => e.name === name).length + 1;
  const joined = waitForEvent(coordinator, "workerJoined", (e) => e.name === name, { nth, timeoutMs: 60_000 });
  await page.goto(`${url}/join?name=${name}${query}`);
  await joined;
  await page.waitForFunction(() => document.documentElement.dataset.state === "ready", null, { timeout: 10_000 });
  expect(problems).toEqual([]);
  return page;
}

async function localOutputs(model: Uint8Array, inputName: string, x: Tensor): Promise<Tensor> {
  return (await runLocally(model, inputName, x, { chunk: 256, threads: 1 })).out;
}

beforeAll(async () => {
  tmp = await tempDir("browser-worker");
  ({ proc: coordinator, url } = await startCoordinator(["--port", "0", "--data-dir", path.join(tmp.dir, "coordinator")]));
  client = new CoordinatorClient(url);
  nodeWorker = await startWorker(coordinator, url, "node-1", path.join(tmp.dir, "node-1"), ["--threads", "1"]);
  if (hasChromium) {
    browser = await launchChromium();
    context = await browser.newContext(PHONE);
  }
}, 120_000);

afterAll(async () => {
  await browser?.close();
  await nodeWorker?.stop();
  await coordinator?.stop();
  // The coordinator's log, for reading after a failure.
  if (coordinator) {
    await mkdir(ARTIFACTS, { recursive: true });
    await writeFile(path.join(ARTIFACTS, "browser-worker-coordinator.log"), coordinator.stdout() + coordinator.stderr());
  }
  await tmp?.remove();
});

describe("the join page's server side", () => {
  it("prints the join URL at start: loopback only, so no QR code", async () => {
    const m = await coordinator.waitFor(/join from a browser on this machine: (\S+)/);
    expect(m[1]).toBe(`${url}/join`);
    expect(coordinator.stdout()).not.toMatch(/[▀▄█]/);
  });

  it("serves /join and its assets cross-origin isolated, and nothing outside its list", async () => {
    for (const p of ["/join", "/join/page.js", "/join/engine.js", "/join/ort/ort.wasm.min.mjs", "/join/ort/ort-wasm-simd-threaded.wasm"]) {
      const res = await fetch(`${url}${p}`);
      expect(res.status, p).toBe(200);
      expect(res.headers.get("cross-origin-opener-policy"), p).toBe("same-origin");
      expect(res.headers.get("cross-origin-embedder-policy"), p).toBe("require-corp");
      expect(res.headers.get("content-security-policy"), p).toContain("script-src 'self' 'wasm-unsafe-eval'");
      await res.arrayBuffer();
    }
    const wasm = await fetch(`${url}/join/ort/ort-wasm-simd-threaded.wasm`);
    expect(wasm.headers.get("content-type")).toBe("application/wasm");
    const bytes = new Uint8Array(await wasm.arrayBuffer());
    expect([...bytes.subarray(0, 4)]).toEqual([0, 0x61, 0x73, 0x6d]); // "\0asm", gunzipped by fetch
    const etag = wasm.headers.get("etag")!;
    expect((await fetch(`${url}/join/ort/ort-wasm-simd-threaded.wasm`, { headers: { "if-none-match": etag } })).status).toBe(304);
    for (const p of ["/join/ort/ort.node.min.mjs", "/join/ort/..%2f..%2fpackage.json", "/join/ort/%2e%2e/%2e%2e/package.json", "/join/dist/build.json", "/join/join.html"]) {
      const res = await fetch(`${url}${p}`);
      expect(res.status, p).toBe(404);
      expect(((await res.json()) as { error: { code: string } }).error.code, p).toBe("E_NOT_FOUND");
    }
  });

  it("draws the join URL as a QR code in SVG for the dashboard", async () => {
    const res = await fetch(`${url}/api/join-qr.svg?url=${encodeURIComponent("http://192.168.1.20:7070/join")}`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("image/svg+xml");
    const svg = await res.text();
    expect(svg).toMatch(/^<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
    expect(svg.length).toBeGreaterThan(500);
    // Without ?url= it encodes this coordinator's /join as the asker reached it.
    expect((await fetch(`${url}/api/join-qr.svg`)).status).toBe(200);
    const bad = await fetch(`${url}/api/join-qr.svg?url=javascript:alert(1)`);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: { code: string } }).error.code).toBe("E_BAD_REQUEST");
  });
});

describe.skipIf(!hasChromium)("a browser worker", () => {
  afterEach(async () => {
    for (const p of opened.splice(0)) if (!p.isClosed()) await p.close();
  });

  it("joins as platform browser on WebAssembly, computes cnn shards beside a Node worker, outputs equal a local run", async () => {
    const page = await joinFromBrowser("browser-1");
    const env = await page.evaluate(() => ({
      backend: document.documentElement.dataset.backend,
      threads: Number(document.documentElement.dataset.threads),
      isolated: crossOriginIsolated,
      shown: document.getElementById("backend")?.textContent,
    }));
    expect(env).toMatchObject({ backend: "wasm", isolated: true, shown: "Wasm" });
    expect(env.threads).toBeGreaterThanOrEqual(1);
    const before = (await rawWorkers()).find((w) => w.name === "browser-1")!;
    expect(before).toMatchObject({ platform: "browser", backend: "wasm", runtime: { name: "onnxruntime-web" }, threads: env.threads });

    const n = 2048;
    const x: Tensor = { dtype: "float32", dims: [n, 3, 32, 32], data: seededNormal(21, n * 3 * 32 * 32, 1) };
    const file = path.join(tmp.dir, "cnn-x.npy");
    await writeNpyFile(file, x);
    const model = catalogModel("cnn").build();
    const { job, files } = await submitJob(client, { model, inputs: { image: file }, outDir: path.join(tmp.dir, "out-cnn"), shardSize: 64 });
    expect(job.state).toBe("done");
    expect(job.shards).toBe(32);
    const got = await readNpyFile(files.logits!);
    const want = await localOutputs(model, "image", x);
    expect(got.dims).toEqual([n, 10]);
    expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(1e-4);

    const status = await client.status();
    const b = status.workers.find((w) => w.name === "browser-1")!;
    const nw = status.workers.find((w) => w.name === "node-1")!;
    expect(b.platform).toBe("browser");
    expect(b.shardsDone).toBeGreaterThan(0);
    expect(nw.shardsDone).toBeGreaterThan(0);
    expect(b.shardsDone + nw.shardsDone).toBe(32);

    // The page tells a person what happened.
    await page.waitForFunction((done) => document.getElementById("shards")?.textContent === String(done), b.shardsDone, { timeout: 5000 });
    expect(await page.locator("#samples").textContent()).toBe(b.samplesDone.toLocaleString("en-US"));
    expect(Number((await page.locator("#speed").textContent())?.replace(/,/g, ""))).toBeGreaterThan(0);
    await mkdir(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, "join-phone.png"), fullPage: true });
    await page.close();
  });

  it("answers a browser that sends garbage with a protocol error, like any worker", async () => {
    const page = await context.newPage();
    const reply = await page.evaluate(
      (ws) =>
        new Promise<string>((resolve, reject) => {
          const s = new WebSocket(ws);
          s.onopen = () => s.send("{not json");
          s.onmessage = (e) => resolve(String(e.data));
          s.onerror = () => reject(new Error("socket error"));
        }),
      `${url.replace("http", "ws")}/ws`,
    );
    expect(JSON.parse(reply)).toMatchObject({ type: "error", code: "E_PROTOCOL" });
    await page.close();
    expect((await client.health()).ok).toBe(true);
  });

  it("loses nothing when its tab is closed mid-job: the shards it held are redone elsewhere", async () => {
    // Two WebAssembly threads here (the page is cross-origin isolated), one in the others.
    const page = await joinFromBrowser("browser-2", "&threads=2");
    expect(await page.evaluate(() => document.documentElement.dataset.threads)).toBe("2");
    expect((await rawWorkers()).find((w) => w.name === "browser-2")?.threads).toBe(2);
    const n = 32768;
    const x: Tensor = { dtype: "float32", dims: [n, 64], data: seededNormal(22, n * 64, 1) };
    const file = path.join(tmp.dir, "wide-x.npy");
    await writeNpyFile(file, x);
    const model = catalogModel("wide-mlp").build();
    const left = waitForEvent(coordinator, "workerLeft", (e) => e.name === "browser-2", { timeoutMs: 120_000 });
    const submitted = submitJob(client, { model, inputs: { x: file }, outDir: path.join(tmp.dir, "out-wide"), shardSize: 256 });

    // Close the tab while it holds shards, once it has proved it computes.
    for (;;) {
      const w = (await rawWorkers()).find((v) => v.name === "browser-2");
      if (w && w.shardsDone >= 1 && w.inflight >= 1) break;
      const job = (await client.status()).jobs.find((j) => j.rows === n);
      if (job && job.state !== "running" && job.state !== "queued") throw new Error(`the job ended (${job.state}) before the browser held a shard`);
      await new Promise((r) => setTimeout(r, 20));
    }
    await page.close();
    const leftLine = await left;
    expect(leftLine.requeued).toBeGreaterThanOrEqual(1);

    const { job, files } = await submitted;
    expect(job.state).toBe("done");
    expect(job.shards).toBe(128);
    expect(job.shardsDone).toBe(128);
    const got = await readNpyFile(files.logits!);
    const want = await localOutputs(model, "x", x);
    expect(got.dims).toEqual([n, 10]);
    expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(1e-4);
    const status = await client.status();
    expect(status.counters.requeued).toBeGreaterThanOrEqual(leftLine.requeued);
    expect(status.workers.some((w) => w.name === "browser-2")).toBe(false);
  });

  it("pauses honestly (hands queued work back, finishes the running shard, leaves) and resumes; pauses off the charger", async () => {
    // A battery the test controls: this headless browser reports one that is always charging.
    const page = await joinFromBrowser("browser-4", "", () => {
      const battery = Object.assign(new EventTarget(), { charging: false, level: 0.42 });
      (window as unknown as { testBattery: typeof battery }).testBattery = battery;
      Object.defineProperty(Navigator.prototype, "getBattery", { value: () => Promise.resolve(battery), configurable: true });
    });
    expect(await page.locator("#charging-note").textContent()).toBe("On battery, 42%.");
    const n = 32768;
    const x: Tensor = { dtype: "float32", dims: [n, 64], data: seededNormal(24, n * 64, 1) };
    const file = path.join(tmp.dir, "wide-x2.npy");
    await writeNpyFile(file, x);
    const model = catalogModel("wide-mlp").build();
    const submitted = submitJob(client, { model, inputs: { x: file }, outDir: path.join(tmp.dir, "out-wide2"), shardSize: 256 });
    await until("the browser holds a shard", async () => {
      const w = (await rawWorkers()).find((v) => v.name === "browser-4");
      return !!w && w.shardsDone >= 1 && w.inflight >= 1;
    });
    const draining = coordinator.waitFor(/\{[^\n]*"worker":"browser-4"[^\n]*"worker draining"[^\n]*\}/);
    const left = waitForEvent(coordinator, "workerLeft", (e) => e.name === "browser-4");
    await page.click("#toggle");
    expect(JSON.parse((await draining)[0])).toMatchObject({ msg: "worker draining" });
    await left;
    await page.waitForFunction(() => document.documentElement.dataset.state === "paused");
    expect(await page.locator("#toggle").textContent()).toBe("Resume");
    expect(await page.locator("#state").textContent()).toBe("Paused");
    const { job, files } = await submitted;
    expect(job.state).toBe("done");
    expect(job.shardsDone).toBe(job.shards);
    expect(maxAbsDiff(await readNpyFile(files.logits!), await localOutputs(model, "x", x))).toBeLessThanOrEqual(1e-4);

    await page.click("#toggle");
    await waitForEvent(coordinator, "workerJoined", (e) => e.name === "browser-4", { nth: 2 });
    await page.waitForFunction(() => document.documentElement.dataset.state === "ready");

    // Only while charging: on battery it leaves the pool, plugged in it comes back.
    await page.check("#only-charging");
    await page.waitForFunction(() => document.documentElement.dataset.state === "paused");
    expect(await page.locator("#state").textContent()).toBe("Waiting for a charger");
    await waitForEvent(coordinator, "workerLeft", (e) => e.name === "browser-4", { nth: 2 });
    expect((await rawWorkers()).some((w) => w.name === "browser-4")).toBe(false);
    await page.evaluate(() => {
      const b = (window as unknown as { testBattery: EventTarget & { charging: boolean } }).testBattery;
      b.charging = true;
      b.dispatchEvent(new Event("chargingchange"));
    });
    await page.waitForFunction(() => document.documentElement.dataset.state === "ready");
    await waitForEvent(coordinator, "workerJoined", (e) => e.name === "browser-4", { nth: 3 });
    expect((await rawWorkers()).some((w) => w.name === "browser-4")).toBe(true);
    // Joined three times: at first, after Resume, after the charger.
    expect(eventsOf(coordinator, "workerJoined", (e) => e.name === "browser-4")).toHaveLength(3);
    await page.close();
  });

  it("runs a model whose batch dim is fixed at 1 sample by sample, alone once the Node worker has left", async () => {
    const page = await joinFromBrowser("browser-3");
    expect(await nodeWorker.stop()).toBe(0);
    await waitForEvent(coordinator, "workerLeft", (e) => e.name === "node-1");
    const x: Tensor = { dtype: "float32", dims: [8, 256], data: seededNormal(23, 8 * 256, 1) };
    const file = path.join(tmp.dir, "b1-x.npy");
    await writeNpyFile(file, x);
    const { job, files } = await submitJob(client, { model: catalogModel("mlp").build({ batch: 1 }), inputs: { x: file }, outDir: path.join(tmp.dir, "out-b1"), shardSize: 3 });
    expect(job.state).toBe("done");
    const got = await readNpyFile(files.logits!);
    const want = await localOutputs(catalogModel("mlp").build(), "x", x);
    expect(got.dims).toEqual([8, 10]);
    expect(maxAbsDiff(got, want)).toBeLessThanOrEqual(1e-4);
    const b = (await client.status()).workers.find((w) => w.name === "browser-3")!;
    expect(b.shardsDone).toBe(3);
    expect(await page.locator("#log").textContent()).toContain("batch of 1: sample by sample");
    await page.close();
  });
});
