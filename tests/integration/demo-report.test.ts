/**
 * `npm start` (the demo) ends by writing the report: it must exist, its pooled samples/s must
 * agree with the coordinator's own log of the same run, and its charts must be standalone SVG.
 */
import { readFile, readdir } from "node:fs/promises";
import path from "node:path";
import { mkdir } from "node:fs/promises";
import { pathToFileURL } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { hasChromium, launchChromium } from "../../harness/chromium.js";
import { runCli, tempDir } from "../../harness/procs.js";

const ARTIFACTS = path.resolve("test-artifacts");

let tmp: Awaited<ReturnType<typeof tempDir>> | undefined;
afterAll(async () => tmp?.remove());

describe("the demo's report", () => {
  it("is written, agrees with the coordinator log within 2%, and has SVG charts", async () => {
    tmp = await tempDir("demo-report");
    const dir = path.join(tmp.dir, "report");
    const r = await runCli(["demo", "--workers", "2", "--samples", "4096", "--report-dir", dir]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`report: ${path.join(dir, "report.md")}`);

    const log = await readFile(path.join(dir, "coordinator.log"), "utf8");
    const done = log.split("\n").filter((l) => l.includes('"msg":"job done"')).map((l) => JSON.parse(l) as { jobId: string; samplesPerSec: number });
    expect(done).toHaveLength(1);
    const { jobId, samplesPerSec: logged } = done[0]!;
    expect(logged).toBeGreaterThan(0);

    const report = await readFile(path.join(dir, "report.md"), "utf8");
    for (const section of ["## Measured", "## This pool in H100s", "## The billion-device extrapolation", "## Sensitivity", "## Verdict"]) {
      expect(report).toContain(section);
    }
    const row = report.split("\n").find((l) => l.startsWith(`| ${jobId} |`));
    expect(row, "the report has a row for the demo job").toBeDefined();
    const cells = row!.split("|").map((c) => c.trim());
    const reported = Number(cells[6]!.replace(/,/g, ""));
    expect(Math.abs(reported - logged) / logged).toBeLessThan(0.02);

    const svgs = (await readdir(dir)).filter((f) => f.endsWith(".svg"));
    expect(svgs.length).toBeGreaterThanOrEqual(3);
    for (const f of svgs) {
      const svg = await readFile(path.join(dir, f), "utf8");
      expect(svg).toMatch(/^(<\?xml [^>]*\?>\s*)?<svg [^>]*xmlns="http:\/\/www\.w3\.org\/2000\/svg"/);
      expect(svg.trim().endsWith("</svg>")).toBe(true);
      expect(report).toContain(`(${f})`);
    }

    // The charts render in a real browser: an <svg> root with a size and drawn content.
    if (!hasChromium && process.env.CI) throw new Error("CI must install chromium (see .ci/run)");
    if (hasChromium) {
      await mkdir(ARTIFACTS, { recursive: true });
      const browser = await launchChromium();
      try {
        const page = await browser.newPage();
        for (const f of svgs) {
          await page.goto(pathToFileURL(path.join(dir, f)).href);
          const shape = await page.evaluate(() => {
            const root = document.documentElement;
            const box = root.getBoundingClientRect();
            return { tag: root.tagName.toLowerCase(), width: box.width, height: box.height, shapes: root.querySelectorAll("rect,path,line,polyline,text").length };
          });
          expect(shape.tag, f).toBe("svg");
          expect(shape.width, f).toBeGreaterThan(100);
          expect(shape.height, f).toBeGreaterThan(50);
          expect(shape.shapes, f).toBeGreaterThan(3);
          await page.screenshot({ path: path.join(ARTIFACTS, `report-${f.replace(/\.svg$/, "")}.png`) });
        }
      } finally {
        await browser.close();
      }
    }
  }, 120_000);
});
