/**
 * The report's measured sections: per-worker rates, pool efficiency, coordinator capacity,
 * simulated workers (only here, apart from every real figure), and this pool in H100s.
 */
import type { JobEfficiency, PoolEquivalent, VirtualSummary, WorkerModelRate } from "./claim.js";
import type { Profiles } from "./reference-profiles.js";
import type { ReportData } from "./report-data.js";
import { type ReportOut, g3, pct, table } from "./render-markdown.js";
import { type Series, barChart, lineChart } from "./svg.js";

const SIMULATED_NOTE = "simulated, excluded from every real-device figure";

/** "## Measured": what the real workers and jobs did, the coordinator, and the simulated workers. */
export function measuredSection(
  out: ReportOut,
  m: {
    data: ReportData;
    rates: readonly WorkerModelRate[];
    eff: readonly JobEfficiency[];
    /** Mean busy seconds per shard, or null when none was measured. */
    shardSec: number | null;
    virt: VirtualSummary;
    scaling: Series[] | undefined;
  },
): void {
  const { md, charts } = out;
  const { rates, eff, shardSec, virt } = m;
  const c = m.data.coordinator;
  md.push("## Measured", "");
  md.push("### Per-worker rates (real devices)", "");
  md.push("samples/s = samples / ((compute ms + CPU-cap idle ms) / 1000); GFLOP/s = samples/s x FLOPs per sample.", "");
  if (rates.length === 0) {
    md.push("No real worker ran a shard.", "");
  } else {
    md.push(
      table(
        ["worker", "model", "shards", "samples", "busy s", "samples/s", "GFLOP/s"],
        rates.map((r) => [r.workerName, r.modelName, String(r.shards), String(r.samples), g3(r.seconds), g3(r.samplesPerSec), g3(r.gflopsPerSec)]),
      ),
      "",
    );
    charts["per-worker.svg"] = barChart(
      "Real workers: GFLOP/s per model (measured)",
      rates.map((r) => ({ label: `${r.workerName} / ${r.modelName}`, value: r.gflopsPerSec, valueLabel: `${g3(r.gflopsPerSec)} GFLOP/s` })),
      { unit: "GFLOP/s while busy" },
    );
    md.push("![Real workers: GFLOP/s per model](per-worker.svg)", "");
  }

  md.push("### Pool efficiency", "");
  md.push("Job samples/s (rows / wall time) divided by the sum of the individual samples/s of the real workers that ran the model.", "");
  if (eff.length === 0) md.push("No real job finished with a measured rate.", "");
  else
    md.push(
      table(
        ["job", "model", "state", "rows", "wall s", "job samples/s", "sum of workers' samples/s", "workers", "efficiency"],
        eff.map((e) => [e.jobId, e.modelName, e.state, String(e.rows), e.wallSec === null ? "n/a" : g3(e.wallSec), g3(e.samplesPerSec), g3(e.sumWorkerSamplesPerSec), String(e.workers), pct(e.efficiency)]),
      ),
      "",
    );

  md.push("### Coordinator capacity", "");
  md.push(
    table(
      ["figure", "value"],
      [
        ["host", `${c.host.cpuModel}, ${c.host.cpus} CPUs, ${c.host.platform}/${c.host.arch}`],
        ["peak connected workers", String(c.peakConnectedWorkers)],
        ["peak shards/s (any 1 s window)", g3(c.peakShardsPerSec)],
        ["resident memory", `${g3(c.rssBytes / 2 ** 20)} MiB`],
        ["mean busy seconds per shard (real workers)", shardSec === null ? "not measured" : g3(shardSec)],
      ],
    ),
    "",
    "Peak shards/s is the most this coordinator was asked to handle, so it is a lower bound on its capacity.",
    "",
  );
  if (m.scaling && m.scaling.length > 0) {
    charts["scaling.svg"] = lineChart("Pool throughput against workers (measured)", m.scaling, { xLabel: "workers", yLabel: "samples/s" });
    md.push("![Pool throughput against workers](scaling.svg)", "");
  }

  if (virt.workers > 0 || virt.jobs > 0) {
    md.push(`### Simulated workers (${SIMULATED_NOTE})`, "");
    md.push(
      `${virt.workers} virtual worker(s) ran ${virt.shards} shard(s), ${virt.samples} sample(s); ${virt.jobs} job(s) touched them. ` +
        "They model device tiers for load testing the coordinator; their rates are not measurements of any device.",
      "",
    );
    md.push(table(["simulated tier", "workers", "shards", "samples"], virt.byProfile.map((v) => [v.profile, String(v.workers), String(v.shards), String(v.samples)])), "");
  }
}

/** "## This pool in H100s": the fastest real job per model against an H100. */
export function poolInH100sSection(out: ReportOut, p: Profiles, poolNow: readonly PoolEquivalent[]): void {
  const { md, charts } = out;
  md.push("## This pool in H100s", "");
  if (poolNow.length === 0) md.push("No real job finished with a measured rate, so the pool has no H100-equivalent yet.", "");
  else {
    md.push(
      table(
        ["model", "GFLOP/sample", "pool samples/s (fastest real job)", "H100 samples/s", "H100 rate is", "H100-equivalents", "pool GFLOP/s", "vs FP32 peak x util", "vs FP16 peak x util"],
        poolNow.map((e) => [
          e.modelName,
          g3(e.flopsPerSample / 1e9),
          g3(e.poolSamplesPerSec),
          g3(e.h100.samplesPerSec),
          e.h100.method,
          g3(e.h100Equivalents),
          g3(e.poolGflopsPerSec),
          g3(e.flopEquivalentFp32),
          g3(e.flopEquivalentFp16),
        ]),
      ),
      "",
      `FLOP-based equivalents divide the pool's GFLOP/s by H100 SXM peak (\`h100.sxm.fp32\`, \`h100.sxm.fp16\`) x utilization \`h100.utilization.central\` (${g3(p.h100.utilization.central.value)}).`,
      "",
    );
    charts["pool-h100.svg"] = barChart(
      "This pool in H100-equivalents, per model (measured)",
      poolNow.map((e) => ({ label: e.modelName, value: e.h100Equivalents, valueLabel: `${g3(e.h100Equivalents)} H100` })),
      { unit: "H100-equivalents" },
    );
    md.push("![This pool in H100-equivalents](pool-h100.svg)", "");
  }
}
