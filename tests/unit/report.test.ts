import { mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  H100_MEASURED,
  H100_PEAK_UTIL,
  extrapolate,
  extrapolateWorkload,
  h100SamplesPerSec,
  networkFactor,
  poolEfficiency,
  poolInH100s,
  tornado,
  virtualSummary,
  workerRates,
  workloads,
} from "../../coordinator/report/claim.js";
import { DEFAULT_PROFILES, type Profiles, listFigures, loadProfiles, profilesFrom } from "../../coordinator/report/reference-profiles.js";
import { renderReport, writeReport } from "../../coordinator/report/render.js";
import { type ReportData, ReportDataSchema } from "../../coordinator/report/report-data.js";
import { barChart, lineChart, tornadoChart } from "../../coordinator/report/svg.js";
import { EdgepoolError } from "../../shared/errors.js";

const RESNET = "a".repeat(64);
const MLP = "b".repeat(64);

function worker(id: string, virtual: boolean, perModel: ReportData["workers"][number]["perModel"], profile: string | null = null) {
  return {
    id,
    name: id,
    platform: "linux",
    arch: "x64",
    cpus: 4,
    threads: 4,
    slots: 2,
    maxCpu: 100,
    virtual,
    profile,
    runtime: { name: "onnxruntime-node", version: "1.30.0" },
    connected: true,
    perModel,
  };
}

function job(id: string, model: string, samplesPerSec: number, virtual: boolean) {
  return { id, model, state: "done", rows: 1000, samplesDone: 1000, startedAt: 1_000, finishedAt: 2_000, samplesPerSec, virtual };
}

/** w1: 1000 samples in 1 s busy (mlp), 100 in 2 s (resnet-like); w2: 500 in 1 s; sim-1 is virtual and fast. */
const DATA: ReportData = ReportDataSchema.parse({
  generatedAt: 1_700_000_000_000,
  coordinator: {
    url: "http://127.0.0.1:7070",
    version: "0.1.0",
    host: { cpus: 8, platform: "linux", arch: "x64", cpuModel: "Test CPU" },
    uptimeSec: 60,
    rssBytes: 100 * 2 ** 20,
    connectedWorkers: 3,
    peakConnectedWorkers: 3,
    peakShardsPerSec: 500,
  },
  models: [
    { sha256: RESNET, flopsPerSample: 8.0e9, name: null },
    { sha256: MLP, flopsPerSample: 1e6, name: "mlp" },
  ],
  workers: [
    worker("w1", false, [
      { model: MLP, shards: 10, samples: 1000, computeMs: 800, throttleMs: 200 },
      { model: RESNET, shards: 4, samples: 100, computeMs: 2000, throttleMs: 0 },
    ]),
    worker("w2", false, [{ model: MLP, shards: 5, samples: 500, computeMs: 1000, throttleMs: 0 }]),
    worker("sim-1", true, [{ model: MLP, shards: 100, samples: 1_000_000, computeMs: 10, throttleMs: 0 }], "flagship"),
  ],
  jobs: [job("j1", MLP, 1200, false), job("j2", MLP, 99_999, true), job("j3", RESNET, 40, false)],
});

describe("measured rates", () => {
  it("computes samples/s and GFLOP/s per real worker and model", () => {
    const rates = workerRates(DATA);
    expect(rates.map((r) => [r.workerId, r.model, r.samplesPerSec])).toEqual([
      ["w1", MLP, 1000],
      ["w1", RESNET, 50],
      ["w2", MLP, 500],
    ]);
    expect(rates[0]!.gflopsPerSec).toBeCloseTo(1, 9);
    expect(rates[1]!.gflopsPerSec).toBeCloseTo(400, 9);
  });

  it("excludes virtual workers and jobs from real figures", () => {
    const rates = workerRates(DATA);
    expect(rates.some((r) => r.workerId === "sim-1")).toBe(false);
    const eff = poolEfficiency(DATA, rates);
    expect(eff.map((e) => e.jobId)).toEqual(["j1", "j3"]);
    expect(eff[0]!.sumWorkerSamplesPerSec).toBe(1500);
    expect(eff[0]!.efficiency).toBeCloseTo(0.8, 12);
    const pool = poolInH100s(DATA, DEFAULT_PROFILES);
    expect(pool.find((e) => e.model === MLP)!.poolSamplesPerSec).toBe(1200);
    const v = virtualSummary(DATA);
    expect(v).toMatchObject({ workers: 1, samples: 1_000_000, shards: 100, jobs: 1 });
    expect(v.byProfile).toEqual([{ profile: "flagship", workers: 1, samples: 1_000_000, shards: 100 }]);
    // The pool variant's per-device rate is the median of real workers only.
    const mlp = workloads(DATA, DEFAULT_PROFILES).find((w) => w.key === MLP)!;
    expect(mlp.poolPerDeviceSamplesPerSec).toBe(750);
    expect(mlp.inputBytes).toBe(256 * 4);
  });
});

describe("H100 reference", () => {
  const p = DEFAULT_PROFILES;
  it("uses the MLPerf figure for ResNet-50-like models", () => {
    const r = h100SamplesPerSec(8.0e9, p);
    expect(r.method).toBe(H100_MEASURED);
    expect(r.samplesPerSec).toBe(88_714);
    const eq = poolInH100s(DATA, p).find((e) => e.model === RESNET)!;
    expect(eq.h100Equivalents).toBeCloseTo(40 / 88_714, 12);
    expect(eq.poolGflopsPerSec).toBeCloseTo(320, 9);
    expect(eq.flopEquivalentFp32).toBeCloseTo(320 / (67_000 * 0.4), 12);
    expect(eq.flopEquivalentFp16).toBeCloseTo(320 / (989_000 * 0.4), 12);
  });

  it("uses peak FP16 x utilization for other models", () => {
    const r = h100SamplesPerSec(1e6, p);
    expect(r.method).toBe(H100_PEAK_UTIL);
    expect(r.samplesPerSec).toBeCloseTo((989e12 * 0.4) / 1e6, 3);
    // 9.1e9 is just outside 10% of 8.2e9.
    expect(h100SamplesPerSec(9.1e9, p).method).toBe(H100_PEAK_UTIL);
    const eq = poolInH100s(DATA, p).find((e) => e.model === MLP)!;
    expect(eq.h100Equivalents).toBeCloseTo(1200 / ((989e12 * 0.4) / 1e6), 15);
  });
});

describe("extrapolation", () => {
  it("matches a hand-computed case, factor by factor", () => {
    const e = extrapolate({
      devices: 1000,
      tiers: [{ name: "t", share: 1, samplesPerSec: 10 }],
      availability: 0.5,
      sustained: 0.5,
      redundancy: 2,
      inputBytes: 1000,
      outputBytes: 0,
      link: { downlinkBytesPerSec: 2000, uplinkBytesPerSec: 1 },
      h100SamplesPerSec: 1,
    });
    // raw 1000 x 10; x0.5 avail; x0.5 sustained; /2; network 2000 B/s / (1000 B x 5/s) = 0.4.
    expect(e.ladder.map((s) => s.h100s)).toEqual([10_000, 5_000, 2_500, 1_250, 500]);
    expect(e.h100s).toBe(500);
    expect(e.networkFactor).toBeCloseTo(0.4, 12);
  });

  it("normalises shares and applies the network per tier", () => {
    expect(networkFactor(10, 100, 10, { downlinkBytesPerSec: 500, uplinkBytesPerSec: 1e9 })).toBe(0.5);
    expect(networkFactor(10, 100, 10, { downlinkBytesPerSec: 1e9, uplinkBytesPerSec: 25 })).toBe(0.25);
    expect(networkFactor(1, 100, 10, { downlinkBytesPerSec: 1e9, uplinkBytesPerSec: 1e9 })).toBe(1);
    const e = extrapolate({
      devices: 10,
      tiers: [
        { name: "fast", share: 2, samplesPerSec: 100 },
        { name: "slow", share: 2, samplesPerSec: 10 },
      ],
      availability: 1,
      sustained: 1,
      redundancy: 1,
      inputBytes: 1,
      outputBytes: 1,
      link: { downlinkBytesPerSec: 20, uplinkBytesPerSec: 1e9 },
      h100SamplesPerSec: 5,
    });
    // fast is capped at 20/s, slow runs at 10/s: mean 15/s x 10 devices / 5.
    expect(e.h100s).toBeCloseTo(30, 12);
    expect(e.ladder[0]!.h100s).toBeCloseTo(110, 12);
  });

  it("computes both variants for ResNet-50 from the profiles", () => {
    const p = DEFAULT_PROFILES;
    const ref = workloads(DATA, p)[0]!;
    const peak = extrapolateWorkload(p, ref, "peak")!;
    // 1e9 x (0.2 x 45 + 0.45 x 9.1 + 0.35 x 5.3) TOPS / 1979 TOPS.
    expect(peak.ladder[0]!.h100s).toBeCloseTo((1e9 * (0.2 * 45 + 0.45 * 9.1 + 0.35 * 5.3)) / 1979, 0);
    const measured = extrapolateWorkload(p, ref, "measured")!;
    const scale = 11.8 / 8.2;
    const mix = (0.2 * 1638 + 0.45 * 331 + 0.35 * 194) * scale;
    expect(measured.ladder[0]!.h100s).toBeCloseTo((1e9 * mix) / 88_714, 0);
    expect(measured.ladder[3]!.h100s).toBeCloseTo((1e9 * mix * 0.2 * 0.65) / 88_714, 0);
    // Every tier is fed at most 36 Mbit/s / 150,528 bytes per sample.
    const fed = (36e6 / 8 / 150_528) * 1e9 * 0.2;
    expect(measured.h100s).toBeCloseTo(fed / 88_714, 0);
    const devices2 = extrapolateWorkload(p, ref, "measured", 2e9)!;
    expect(devices2.h100s).toBeCloseTo(2 * measured.h100s, 6);
  });

  it("sorts the tornado by swing and evaluates the bounds", () => {
    const p = DEFAULT_PROFILES;
    const ref = workloads(DATA, p)[0]!;
    const t = tornado(p, ref, "measured")!;
    expect(t.bars.length).toBeGreaterThanOrEqual(8);
    for (let i = 1; i < t.bars.length; i++) expect(t.bars[i - 1]!.swing).toBeGreaterThanOrEqual(t.bars[i]!.swing);
    const av = t.bars.find((b) => b.factor === "availability")!;
    expect(av.atLow).toBeCloseTo(t.baseline * 0.5, 6);
    expect(av.atHigh).toBeCloseTo(t.baseline * 1.5, 6);
    const red = t.bars.find((b) => b.factor === "redundancy")!;
    expect(red.atLow).toBeCloseTo(t.baseline / 3, 6);
    expect(red.atHigh).toBeCloseTo(t.baseline, 6);
    expect(t.bars.find((b) => b.factor === "network")!.atHigh).toBeGreaterThan(t.baseline * 10);
  });
});

describe("profiles", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(os.tmpdir(), "edgepool-report-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("applies command-line overrides and marks them assumed", async () => {
    const p = await loadProfiles({ overrides: ["fleet.devices=2e9", "availability.central=0.3", "h100.sxm.int8=3958"] });
    expect(p.fleet.devices).toEqual({ value: 2e9, unit: "devices", kind: "assumed", source: "overridden on the command line" });
    expect(p.availability.central.value).toBe(0.3);
    expect(p.h100.sxm.int8.kind).toBe("assumed");
    expect(p.h100.sxm.fp16).toEqual(DEFAULT_PROFILES.h100.sxm.fp16);
    expect(DEFAULT_PROFILES.fleet.devices.value).toBe(1e9);
  });

  it("deep-merges a file and marks its figures", async () => {
    const file = path.join(dir, "mine.json");
    await writeFile(file, JSON.stringify({ availability: { central: 0.25 }, phones: { mid: { share: { value: 0.5, source: "my survey", kind: "sourced" } } } }));
    const p = await loadProfiles({ file, overrides: ["sustained.central=0.7"] });
    expect(p.availability.central).toMatchObject({ value: 0.25, kind: "assumed", source: "overridden by mine.json" });
    expect(p.phones.mid.share).toMatchObject({ value: 0.5, kind: "sourced", source: "my survey" });
    expect(p.sustained.central).toMatchObject({ value: 0.7, source: "overridden on the command line" });
    expect(p.phones.flagship).toEqual(DEFAULT_PROFILES.phones.flagship);
  });

  const codeOf = (fn: () => unknown): { code: string; message: string } => {
    try {
      fn();
    } catch (err) {
      if (err instanceof EdgepoolError) return { code: err.code, message: err.message };
      throw err;
    }
    throw new Error("expected an error");
  };

  it("rejects an unknown path with E_CONFIG that lists the paths near it", () => {
    const e = codeOf(() => profilesFrom({ overrides: ["fleet.device=2e9"] }));
    expect(e.code).toBe("E_CONFIG");
    expect(e.message).toContain("fleet.devices");
    expect(e.message).toContain("fleet.smartphoneOwners");
    const top = codeOf(() => profilesFrom({ overrides: ["nonsense=1"] }));
    expect(top.code).toBe("E_CONFIG");
    expect(top.message).toContain("availability");
  });

  it("rejects a non-number, an out-of-range value and a bad file key with E_CONFIG", async () => {
    const nan = codeOf(() => profilesFrom({ overrides: ["fleet.devices=lots"] }));
    expect(nan.code).toBe("E_CONFIG");
    expect(nan.message).toContain("fleet.devices");
    expect(codeOf(() => profilesFrom({ overrides: ["fleet.devices"] })).code).toBe("E_CONFIG");
    const range = codeOf(() => profilesFrom({ overrides: ["availability.central=5"] }));
    expect(range.code).toBe("E_CONFIG");
    expect(range.message).toContain("availability.central");
    const file = codeOf(() => profilesFrom({ fileJson: { availability: { centre: 0.3 } }, fileLabel: "x.json" }));
    expect(file.code).toBe("E_CONFIG");
    expect(file.message).toContain("availability.centre");
    expect(file.message).toContain("availability.central");
    const str = codeOf(() => profilesFrom({ fileJson: { fleet: { devices: "2e9" } } }));
    expect(str.code).toBe("E_CONFIG");
    expect(str.message).toContain("fleet.devices");
    const bad = path.join(dir, "bad.json");
    await writeFile(bad, "{ not json");
    await expect(loadProfiles({ file: bad })).rejects.toMatchObject({ code: "E_CONFIG" });
  });
});

/**
 * Minimal XML well-formedness check: one root element, balanced and properly nested tags,
 * quoted attributes, no stray '<' or '&' in text. Returns the root element's tag and attributes.
 */
function checkXml(xml: string): { root: string; attrs: Record<string, string> } {
  let i = 0;
  const stack: string[] = [];
  let root: { root: string; attrs: Record<string, string> } | null = null;
  const isName = (c: string | undefined) => c !== undefined && /[A-Za-z0-9_:.-]/.test(c);
  const checkText = (t: string) => {
    for (let k = 0; k < t.length; k++) {
      if (t[k] === "&") {
        const semi = t.indexOf(";", k);
        const ent = t.slice(k + 1, semi);
        if (semi < 0 || !/^(amp|lt|gt|quot|apos|#\d+|#x[0-9a-fA-F]+)$/.test(ent)) throw new Error(`bad entity at ${k}`);
      }
    }
  };
  while (i < xml.length) {
    const lt = xml.indexOf("<", i);
    const textPart = lt < 0 ? xml.slice(i) : xml.slice(i, lt);
    checkText(textPart);
    if (stack.length === 0 && textPart.trim() !== "") throw new Error("text outside the root element");
    if (lt < 0) break;
    if (xml.startsWith("<?", lt)) {
      if (lt !== 0 && root !== null) throw new Error("processing instruction after root");
      const end = xml.indexOf("?>", lt);
      if (end < 0) throw new Error("unterminated <?");
      i = end + 2;
      continue;
    }
    if (xml.startsWith("<!--", lt)) {
      const end = xml.indexOf("-->", lt);
      if (end < 0) throw new Error("unterminated comment");
      i = end + 3;
      continue;
    }
    let j = lt + 1;
    const closing = xml[j] === "/";
    if (closing) j++;
    const nameStart = j;
    while (isName(xml[j])) j++;
    const name = xml.slice(nameStart, j);
    if (name === "") throw new Error(`empty tag name at ${lt}`);
    const attrs: Record<string, string> = {};
    for (;;) {
      while (/\s/.test(xml[j] ?? "")) j++;
      const c = xml[j];
      if (c === undefined) throw new Error("unterminated tag");
      if (c === ">" || (c === "/" && xml[j + 1] === ">")) break;
      if (closing) throw new Error("attributes on a closing tag");
      const an = j;
      while (isName(xml[j])) j++;
      const attrName = xml.slice(an, j);
      if (attrName === "" || xml[j] !== "=") throw new Error(`bad attribute at ${j} in <${name}>`);
      j++;
      const q = xml[j];
      if (q !== '"' && q !== "'") throw new Error(`unquoted attribute ${attrName}`);
      const endQ = xml.indexOf(q, j + 1);
      if (endQ < 0) throw new Error("unterminated attribute");
      const value = xml.slice(j + 1, endQ);
      if (value.includes("<")) throw new Error("'<' in attribute");
      checkText(value);
      if (Object.hasOwn(attrs, attrName)) throw new Error(`duplicate attribute ${attrName}`);
      attrs[attrName] = value;
      j = endQ + 1;
    }
    const selfClosing = xml[j] === "/";
    i = j + (selfClosing ? 2 : 1);
    if (closing) {
      const open = stack.pop();
      if (open !== name) throw new Error(`</${name}> closes <${open ?? "nothing"}>`);
      continue;
    }
    if (stack.length === 0) {
      if (root !== null) throw new Error("second root element");
      root = { root: name, attrs };
    }
    if (!selfClosing) stack.push(name);
  }
  if (stack.length > 0) throw new Error(`unclosed <${stack.join("> <")}>`);
  if (!root) throw new Error("no root element");
  return root;
}

describe("svg", () => {
  it("checker catches malformed XML", () => {
    expect(() => checkXml("<svg><g></svg>")).toThrow();
    expect(() => checkXml("<svg>a & b</svg>")).toThrow();
    expect(() => checkXml("<svg x=1/>")).toThrow();
    expect(checkXml('<svg a="1"><g/></svg>').root).toBe("svg");
  });

  it("charts are well-formed standalone SVG with escaped text", () => {
    const charts = [
      barChart("bars <&> \"quoted\"", [{ label: "a<b", value: 3 }, { label: "c&d", value: 0 }], { unit: "x" }),
      barChart("empty", []),
      tornadoChart("tornado", 100, [{ label: "avail", low: 50, high: 150, lowLabel: "0.1", highLabel: "0.3" }], { unit: "H100s" }),
      tornadoChart("linear", 0, [{ label: "z", low: -1, high: 2, lowLabel: "lo", highLabel: "hi" }], { log: false }),
      lineChart("lines", [{ name: "pool", points: [[1, 10], [2, 19], [4, 35]] }], { xLabel: "workers", yLabel: "samples/s" }),
    ];
    for (const svg of charts) {
      const { root, attrs } = checkXml(svg);
      expect(root).toBe("svg");
      expect(attrs.xmlns).toBe("http://www.w3.org/2000/svg");
      expect(attrs.viewBox).toMatch(/^0 0 \d+ \d+$/);
      expect(Number(attrs.width)).toBeGreaterThan(0);
      expect(svg).not.toMatch(/href=|url\(/);
    }
    expect(charts[0]).toContain("a&lt;b");
    expect(charts[0]).toContain("&quot;quoted&quot;");
  });
});

describe("renderReport", () => {
  const p: Profiles = DEFAULT_PROFILES;
  const cmd = "npx edgepool report --coordinator http://127.0.0.1:7070 --out out";
  const { markdown, charts } = renderReport(DATA, p, { command: cmd });

  it("has every section, every figure's label and the command", () => {
    for (const h of [
      "## Measured",
      "### Per-worker rates (real devices)",
      "### Pool efficiency",
      "### Coordinator capacity",
      "## This pool in H100s",
      "## The billion-device extrapolation",
      "### Device mix",
      "### Coordinators needed",
      "## Sensitivity",
      "## Verdict",
      "## Figures and sources",
      "## Where the equivalence breaks",
      "## Reproduce",
    ]) {
      expect(markdown).toContain(h);
    }
    for (const [name] of listFigures(p)) expect(markdown).toContain(`\`${name}\``);
    expect(markdown).toContain(cmd);
    for (const kind of ["measured", "sourced", "assumed"]) expect(markdown).toContain(`| ${kind} |`);
    expect(markdown).toContain(H100_MEASURED);
    expect(markdown).toContain(H100_PEAK_UTIL);
  });

  it("references every chart, and every chart is well-formed SVG", () => {
    expect(Object.keys(charts).sort()).toEqual(["extrapolation.svg", "per-worker.svg", "pool-h100.svg", "tornado.svg"]);
    for (const [name, svg] of Object.entries(charts)) {
      expect(markdown).toContain(`](${name})`);
      const { root, attrs } = checkXml(svg);
      expect(root).toBe("svg");
      expect(attrs.xmlns).toBe("http://www.w3.org/2000/svg");
    }
  });

  it("keeps virtual workers to their own subsection", () => {
    const sim = markdown.indexOf("### Simulated workers");
    expect(sim).toBeGreaterThan(0);
    const nextSection = markdown.indexOf("\n## ", sim);
    const outside = markdown.slice(0, sim) + markdown.slice(nextSection);
    expect(outside).not.toContain("sim-1");
    expect(outside).not.toContain("99,999");
    expect(markdown.slice(sim, nextSection)).toContain("flagship");
    expect(charts["per-worker.svg"]).not.toContain("sim-1");
    const real = ReportDataSchema.parse({ ...DATA, workers: DATA.workers.filter((w) => !w.virtual), jobs: DATA.jobs.filter((j) => !j.virtual) });
    expect(renderReport(real, p, { command: cmd }).markdown).not.toContain("### Simulated workers");
  });

  it("puts numbers from the computation into the verdict", () => {
    const verdict = markdown.slice(markdown.indexOf("## Verdict"), markdown.indexOf("## Figures and sources"));
    expect(verdict).toContain("1 billion phones");
    expect(verdict).toContain("the claim says 1 million");
    const big = renderReport(DATA, p, { command: cmd, devices: 4e9 }).markdown;
    expect(big).toContain("4 billion phones");
    expect(big).toContain("the claim says 4 million");
  });

  it("writes report.md and the charts", async () => {
    const dir = await mkdtemp(path.join(os.tmpdir(), "edgepool-report-out-"));
    try {
      const out = path.join(dir, "nested", "report");
      const { reportPath, files } = await writeReport(out, DATA, p, { command: cmd });
      expect(reportPath).toBe(path.join(out, "report.md"));
      expect((await readdir(out)).sort()).toEqual(["extrapolation.svg", "per-worker.svg", "pool-h100.svg", "report.md", "tornado.svg"]);
      expect(files).toHaveLength(5);
      expect(await readFile(reportPath, "utf8")).toBe(markdown);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
