/**
 * Turns a coordinator's measurements and the reference figures into report.md plus SVG
 * charts. Simulated (virtual) workers appear only in their own subsection. The sections are
 * built in render-measured.ts, render-extrapolation.ts and render-verdict.ts; this module
 * computes what they share, runs them in order, adds the figures, limits and reproduce
 * sections, and writes the files.
 */
import { mkdir, rename, writeFile } from "node:fs/promises";
import path from "node:path";
import {
  type Extrapolation,
  type Variant,
  extrapolateWorkload,
  fmtCount,
  measuredShardSeconds,
  poolEfficiency,
  poolInH100s,
  virtualSummary,
  workerRates,
  workloads,
} from "./claim.js";
import { type Profiles, listFigures } from "./reference-profiles.js";
import type { ReportData } from "./report-data.js";
import { extrapolationSection } from "./render-extrapolation.js";
import { type ReportOut, fmtValue, g3, table } from "./render-markdown.js";
import { measuredSection, poolInH100sSection } from "./render-measured.js";
import { sensitivitySection, verdictSection } from "./render-verdict.js";
import type { Series } from "./svg.js";

export interface RenderOptions {
  /** The command that reproduces this report. */
  command: string;
  /** Fleet size for the extrapolation; defaults to fleet.devices. */
  devices?: number;
  /** Optional measured throughput against worker count, drawn as a line chart. */
  scaling?: Series[];
}

export interface RenderedReport {
  markdown: string;
  /** File name (e.g. "tornado.svg") to SVG text. */
  charts: Record<string, string>;
}

/** report.md and its charts, from measured data and reference figures. */
export function renderReport(data: ReportData, profiles: Profiles, opts: RenderOptions): RenderedReport {
  const p = profiles;
  const devices = opts.devices ?? p.fleet.devices.value;
  const rates = workerRates(data);
  const eff = poolEfficiency(data, rates);
  const poolNow = poolInH100s(data, p);
  const wls = workloads(data, p, rates);
  const virt = virtualSummary(data);
  const shardSec = measuredShardSeconds(data);
  const head = wls[0]!;
  const ex: Record<Variant, Extrapolation | null> = {
    peak: extrapolateWorkload(p, head, "peak", devices),
    measured: extrapolateWorkload(p, head, "measured", devices),
    pool: extrapolateWorkload(p, head, "pool", devices),
  };
  const out: ReportOut = { md: [], charts: {} };
  const { md } = out;
  const measuredSource = `measured: ${opts.command}`;

  md.push("# edgepool report: is a billion phones a million H100s?", "");
  md.push(
    `Generated ${new Date(data.generatedAt).toISOString()} from coordinator ${data.coordinator.url} (edgepool ${data.coordinator.version}). ` +
      `The claim: the compute of ${fmtCount(p.fleet.devices.value)} phones roughly equals ${fmtCount(p.fleet.devices.value / 1000)} H100s. ` +
      "Every figure below is labelled measured, sourced or assumed; see Figures and sources.",
    "",
  );

  measuredSection(out, { data, rates, eff, shardSec, virt, scaling: opts.scaling });
  poolInH100sSection(out, p, poolNow);
  extrapolationSection(out, { data, p, devices, wls, head, ex, shardSec });
  const tor = sensitivitySection(out, p, head, devices);
  verdictSection(out, { p, devices, head, ex, tor, poolNow });

  // --- Figures ---
  const c = data.coordinator;
  md.push("## Figures and sources", "");
  const figRows: string[][] = listFigures(p).map(([name, f]) => [`\`${name}\``, fmtValue(f.value), f.unit, f.kind, f.source]);
  for (const r of rates) {
    figRows.push([`worker ${r.workerName} on ${r.modelName}`, fmtValue(r.samplesPerSec), "samples/s", "measured", measuredSource]);
  }
  for (const e of eff) figRows.push([`job ${e.jobId} (${e.modelName})`, fmtValue(e.samplesPerSec), "samples/s", "measured", measuredSource]);
  for (const m of data.models) figRows.push([`FLOPs per sample of ${m.name ?? m.sha256.slice(0, 12)}`, fmtValue(m.flopsPerSample), "FLOP/sample", "measured", `counted from the model graph; ${opts.command}`]);
  figRows.push(["coordinator peak shards/s", fmtValue(c.peakShardsPerSec), "shards/s", "measured", measuredSource]);
  if (shardSec !== null) figRows.push(["mean busy seconds per shard", fmtValue(shardSec), "s", "measured", measuredSource]);
  md.push(table(["figure", "value", "unit", "kind", "source"], figRows), "");
  md.push(`Override any figure with \`--set path=number\` (e.g. \`--set availability.central=0.3\`) or a JSON file with \`--profiles\`; overridden figures are marked assumed.`, "");

  // --- Breaks ---
  md.push("## Where the equivalence breaks", "");
  md.push(
    "Only work made of many independent samples of a model that fits one device pools. Work that needs communication between devices does not: " +
      "training, or one large model split across devices, needs links like NVLink, and phone uplinks " +
      `(${g3(p.network.uplinkMbps.value)} Mbit/s median) are about 1e5 times slower. Phone memory (8-16 GB) caps the model a single device can hold. ` +
      `Untrusted devices need redundancy (k = ${g3(p.redundancy.untrusted.value)} halves the useful rate), and inputs must travel to the device, which the network factor above charges for.`,
    "",
  );

  // --- Reproduce ---
  md.push("## Reproduce", "", "```sh", opts.command, "```", "");
  return { markdown: md.join("\n"), charts: out.charts };
}

async function writeAtomic(file: string, content: string): Promise<void> {
  const tmp = `${file}.${process.pid}.${Date.now()}.tmp`;
  await writeFile(tmp, content, "utf8");
  await rename(tmp, file);
}

/** Writes report.md and its SVG charts into `dir` (created if needed), each file atomically. */
export async function writeReport(dir: string, data: ReportData, profiles: Profiles, opts: RenderOptions): Promise<{ reportPath: string; files: string[] }> {
  const { markdown, charts } = renderReport(data, profiles, opts);
  await mkdir(dir, { recursive: true });
  const files: string[] = [];
  for (const [name, svg] of Object.entries(charts)) {
    const f = path.join(dir, name);
    await writeAtomic(f, svg);
    files.push(f);
  }
  const reportPath = path.join(dir, "report.md");
  await writeAtomic(reportPath, markdown);
  files.push(reportPath);
  return { reportPath, files };
}
