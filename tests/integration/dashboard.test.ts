/**
 * The live dashboard at GET /: a real coordinator process, real workers and a real job,
 * watched in headless Chromium. The page must follow the pool as it changes (a worker
 * joins, a job's progress moves, then completes) through /api/events alone, load nothing
 * from any other origin, and render worker names as text. Screenshots of a phone-sized and
 * a desktop viewport go to test-artifacts/. A second test checks that closing the
 * coordinator ends open event streams instead of leaving them hanging.
 */
import http from "node:http";
import { mkdir } from "node:fs/promises";
import path from "node:path";
import type { Page } from "playwright-core";
import { afterEach, describe, expect, it } from "vitest";
import { CoordinatorClient } from "../../coordinator/client/client.js";
import { parseCoordinatorConfig } from "../../coordinator/config.js";
import { Coordinator } from "../../coordinator/coordinator.js";
import type { DashboardSnapshot } from "../../coordinator/dashboard/snapshot.js";
import { submitJob } from "../../coordinator/client/submit-job.js";
import { catalogModel } from "../../shared/onnx/catalog.js";
import { createLogger } from "../../shared/node/logger.js";
import { writeNpyFile } from "../../shared/node/npy-file.js";
import { seededNormal } from "../../shared/onnx/builder.js";
import { hasChromium, launchChromium } from "../../harness/chromium.js";
import { startCoordinator, startWorker, tempDir } from "../../harness/procs.js";

const ARTIFACTS = path.resolve("test-artifacts");
/** Compute-dense with small inputs; with capped workers a job lasts several seconds. */
const MODEL = "wide-mlp";
const ROWS = 12_000;
const CAP = ["--max-cpu", "25"];
/** A worker name with markup in it: the page must show it as text. */
const MARKUP_NAME = "<i>w2</i>";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

/** The progress the page shows for a job (from its data attribute), or null when not listed. */
function progressOf(page: Page, jobId: string): Promise<number | null> {
  return page.evaluate((id) => {
    const li = document.querySelector<HTMLElement>(`li.job[data-job-id="${CSS.escape(id)}"]`);
    return li?.dataset.progress === undefined ? null : Number(li.dataset.progress);
  }, jobId);
}

/** Records every request and every console error or uncaught exception of a page. */
function watch(page: Page): { requests: string[]; errors: string[] } {
  const seen = { requests: [] as string[], errors: [] as string[] };
  page.on("request", (r) => seen.requests.push(r.url()));
  page.on("console", (m) => {
    if (m.type() === "error") seen.errors.push(m.text());
  });
  page.on("pageerror", (e) => seen.errors.push(e.message));
  return seen;
}

describe("the live dashboard", () => {
  it("follows workers joining and a job's progress to 100%, on a phone and a desktop", async () => {
    if (!hasChromium && process.env.CI) throw new Error("CI must install chromium (see .ci/run)");
    if (!hasChromium) return;

    const tmp = await tempDir("dashboard");
    cleanups.push(tmp.remove);
    const input = path.join(tmp.dir, "x.npy");
    await writeNpyFile(input, { dtype: "float32", dims: [ROWS, 64], data: seededNormal(5, ROWS * 64, 1) });

    const { proc: coordinator, url } = await startCoordinator(["--port", "0", "--data-dir", path.join(tmp.dir, "coordinator"), "--log-level", "info"]);
    cleanups.push(() => coordinator.stop("SIGKILL"));
    const origin = new URL(url).origin;
    const w1 = await startWorker(coordinator, url, "w1", path.join(tmp.dir, "w1"), CAP);
    cleanups.push(() => w1.stop("SIGKILL"));

    // The page and its script are served with their types and a same-origin-only policy.
    const page0 = await fetch(`${url}/`);
    expect(page0.headers.get("content-type")).toMatch(/^text\/html/);
    const csp = page0.headers.get("content-security-policy") ?? "";
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).not.toMatch(/https?:|\*|unsafe/);
    const script = await fetch(`${url}/dashboard/dashboard.js`);
    expect(script.headers.get("content-type")).toMatch(/^text\/javascript/);
    expect(await script.text()).not.toContain("innerHTML");

    await mkdir(ARTIFACTS, { recursive: true });
    const browser = await launchChromium();
    cleanups.push(() => browser.close());
    const desktop = await (await browser.newContext({ viewport: { width: 1280, height: 900 } })).newPage();
    const phone = await (await browser.newContext({ viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true })).newPage();
    const seen = [watch(desktop), watch(phone)];

    await desktop.goto(`${url}/`);
    await desktop.waitForFunction(() => document.querySelector("#connection")?.getAttribute("data-state") === "live");
    await desktop.waitForFunction(() => document.querySelector("#real-worker-count")?.getAttribute("data-count") === "1");
    // The join QR code is served by the coordinator and renders as an image.
    await desktop.waitForFunction(() => ((document.querySelector("#join-qr") as HTMLImageElement | null)?.naturalWidth ?? 0) > 0);
    expect(await desktop.getAttribute("#join-link", "href")).toBe("/join");
    expect(await desktop.textContent("#virtual-worker-count")).toBe("0");

    // A job that runs for several seconds on capped workers.
    const client = new CoordinatorClient(url);
    let jobId = "";
    const submitted = submitJob(client, {
      model: catalogModel(MODEL).build(),
      inputs: { x: input },
      outDir: path.join(tmp.dir, "out"),
      shardSize: 100,
      onJob: (j) => (jobId = j.id),
    });
    submitted.catch(() => undefined);
    // The first reading: the job listed as running, part done.
    const first = (await (
      await desktop.waitForFunction(() => {
        const li = document.querySelector<HTMLElement>("li.job");
        const p = Number(li?.dataset.progress);
        return li?.dataset.state === "running" && p > 0 && p < 1 ? p : null;
      })
    ).jsonValue()) as number;
    expect(jobId).not.toBe("");
    expect(first).toBeGreaterThan(0);
    expect(first).toBeLessThan(1);

    // A second worker joins while the page is open; its name carries markup.
    const w2 = await startWorker(coordinator, url, MARKUP_NAME, path.join(tmp.dir, "w2"), CAP);
    cleanups.push(() => w2.stop("SIGKILL"));
    await desktop.waitForFunction(() => document.querySelector("#real-worker-count")?.getAttribute("data-count") === "2");
    const names = await desktop.$$eval("#real-workers td.name", (tds) => tds.map((td) => ({ text: td.textContent, elements: td.children.length })));
    expect(names).toEqual([
      { text: "w1", elements: 0 },
      { text: MARKUP_NAME, elements: 0 },
    ]);

    // Progress moves on the page while the job runs (read at two moments).
    await desktop.waitForFunction(
      ([id, before]) => Number(document.querySelector<HTMLElement>(`li.job[data-job-id="${CSS.escape(id)}"]`)?.dataset.progress) > before,
      [jobId, first] as const,
    );
    const second = await progressOf(desktop, jobId);
    expect(second).toBeGreaterThan(first);

    // Mid-job: pooled throughput, its H100 equivalent with its label, and the chart.
    await desktop.waitForFunction(() => Number((document.querySelector("#samples-per-sec")?.textContent ?? "").replace(/,/g, "")) > 0);
    expect(await desktop.textContent("#h100-label")).toMatch(/^≈ H100s \((peak × utilization, assumed|MLPerf measured)\)$/);
    expect(Number(await desktop.textContent("#h100-equivalents"))).toBeGreaterThan(0);
    await desktop.waitForFunction(() => Number(document.querySelector("#throughput-chart")?.getAttribute("data-points")) >= 3);
    expect(await desktop.locator("#throughput-chart polyline.samples").count()).toBeGreaterThan(0);

    await phone.goto(`${url}/`);
    await phone.waitForFunction(() => document.querySelector("#real-worker-count")?.getAttribute("data-count") === "2");
    await phone.waitForFunction(() => document.querySelector("li.job") !== null);
    await phone.waitForFunction(() => Number(document.querySelector("#throughput-chart")?.getAttribute("data-points")) >= 3);
    const overflow = await phone.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    expect(overflow, "nothing wider than the phone's screen").toBeLessThanOrEqual(0);
    await phone.screenshot({ path: path.join(ARTIFACTS, "dashboard-phone.png"), fullPage: true });
    await desktop.screenshot({ path: path.join(ARTIFACTS, "dashboard-desktop.png"), fullPage: true });

    // The job completes; both pages show it done at 100%.
    const result = await submitted;
    expect(result.job.state).toBe("done");
    for (const page of [desktop, phone]) {
      await page.waitForFunction((id) => {
        const li = document.querySelector<HTMLElement>(`li.job[data-job-id="${CSS.escape(id)}"]`);
        return li?.dataset.state === "done" && li.dataset.progress === "1" && li.querySelector("[data-role=percent]")?.textContent === "100%";
      }, jobId);
    }
    // The bar animates to full width before the last screenshot.
    await desktop.waitForFunction((id) => {
      const bar = document.querySelector(`li.job[data-job-id="${CSS.escape(id)}"] .bar`);
      const fill = bar?.querySelector(".fill");
      return bar && fill && fill.getBoundingClientRect().width >= bar.getBoundingClientRect().width - 0.5;
    }, jobId);
    await desktop.screenshot({ path: path.join(ARTIFACTS, "dashboard-desktop-done.png"), fullPage: true });

    // Everything came from the coordinator, with no error in either page.
    for (const s of seen) {
      expect(s.requests.length).toBeGreaterThan(0);
      expect(s.requests.filter((r) => new URL(r).origin !== origin)).toEqual([]);
      expect(s.errors).toEqual([]);
    }
    expect(seen[0]!.requests).toContain(`${origin}/api/events`);
  }, 120_000);

  it("sends a snapshot at once, one per second after, and ends open streams when the coordinator closes", async () => {
    const tmp = await tempDir("dashboard-close");
    cleanups.push(tmp.remove);
    const log = createLogger({ name: "coordinator", level: "silent" });
    const coordinator = await Coordinator.start(parseCoordinatorConfig({ port: 0, dataDir: tmp.dir, logLevel: "silent" }), log);
    cleanups.push(() => coordinator.close());

    const res = await new Promise<http.IncomingMessage>((resolve, reject) => http.get(`${coordinator.url}/api/events`, resolve).on("error", reject));
    expect(res.statusCode).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/event-stream/);
    res.setEncoding("utf8");
    let body = "";
    const snapshots: DashboardSnapshot[] = [];
    const waiters: Array<() => void> = [];
    res.on("data", (chunk: string) => {
      body += chunk;
      for (let i = body.indexOf("\n\n"); i >= 0; i = body.indexOf("\n\n")) {
        const data = body.slice(0, i).split("\n").find((l) => l.startsWith("data: "));
        body = body.slice(i + 2);
        if (data) snapshots.push(JSON.parse(data.slice(6)) as DashboardSnapshot);
      }
      for (const w of waiters.splice(0)) w();
    });
    const ended = new Promise<"end" | "aborted">((resolve) => {
      res.once("end", () => resolve("end"));
      res.once("aborted", () => resolve("aborted"));
      res.once("error", () => resolve("aborted"));
    });
    const until = async (n: number) => {
      while (snapshots.length < n) await new Promise<void>((r) => waiters.push(r));
    };

    await until(2);
    expect(snapshots[0]!.workers).toEqual({ real: 0, realBusy: 0, virtual: 0, virtualBusy: 0, listed: [], unlisted: { real: 0, virtual: 0 } });
    expect(snapshots[0]!.throughput.h100).toBeNull();
    const gap = snapshots[1]!.at - snapshots[0]!.at;
    expect(gap).toBeGreaterThanOrEqual(900);
    expect(gap).toBeLessThan(2000);

    const stopped = coordinator.events.next("coordinatorStopped");
    const closed = coordinator.close();
    expect(await ended).toBe("end");
    await closed;
    // The stream's end let the close finish in its graceful stage: nothing had to be cut.
    expect((await stopped).forced).toBe(false);
    expect(coordinator.state).toBe("closed");
  }, 30_000);
});
