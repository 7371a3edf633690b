/**
 * The report's closing judgement: the sensitivity of the measured answer (a table and a
 * tornado chart, then the peak variant's largest swing) and the verdict paragraph.
 */
import { type Extrapolation, type PoolEquivalent, type Tornado, type Variant, type Workload, VARIANT_LABELS, fmtCount, tornado, verdictText } from "./claim.js";
import type { Profiles } from "./reference-profiles.js";
import { type ReportOut, table } from "./render-markdown.js";
import { tornadoChart } from "./svg.js";

/** "## Sensitivity"; returns the measured variant's tornado for the verdict, or null. */
export function sensitivitySection(out: ReportOut, p: Profiles, head: Workload, devices: number): Tornado | null {
  const { md, charts } = out;
  md.push("## Sensitivity", "");
  const sensVariant: Variant = "measured";
  const tor = tornado(p, head, sensVariant, devices);
  if (tor) {
    md.push(`The ${VARIANT_LABELS[sensVariant]} answer for ${head.label} (baseline ${fmtCount(tor.baseline)} H100s) with one factor at a time at its bounds, largest swing first:`, "");
    md.push(
      table(
        ["factor", "low bound", "H100s at low", "high bound", "H100s at high", "swing"],
        tor.bars.map((b) => [b.factor, b.lowLabel, fmtCount(b.atLow), b.highLabel, fmtCount(b.atHigh), fmtCount(b.swing)]),
      ),
      "",
    );
    const idle = tor.bars.filter((b) => b.swing === 0).map((b) => b.factor);
    if (idle.length > 0) {
      md.push(`No swing from ${idle.join(", ")}: another limit (usually the network) caps every tier at these values, so these factors do not bind.`, "");
    }
    charts["tornado.svg"] = tornadoChart(
      `Sensitivity: ${head.label}, measured vs measured`,
      tor.baseline,
      tor.bars.map((b) => ({ label: b.factor, low: b.atLow, high: b.atHigh, lowLabel: b.lowLabel, highLabel: b.highLabel })),
      { unit: "H100-equivalents" },
    );
    md.push("![Sensitivity tornado](tornado.svg)", "");
  }
  const peakTor = tornado(p, head, "peak", devices);
  if (peakTor) {
    md.push(
      `Peak vs peak, the largest swing is ${peakTor.bars[0]?.factor ?? "n/a"} (${fmtCount(peakTor.bars[0]?.atLow ?? Number.NaN)} to ${fmtCount(peakTor.bars[0]?.atHigh ?? Number.NaN)} around ${fmtCount(peakTor.baseline)}).`,
      "",
    );
  }
  return tor;
}

/** "## Verdict", when both the peak and the measured variant have an answer. */
export function verdictSection(
  out: ReportOut,
  v: { p: Profiles; devices: number; head: Workload; ex: Record<Variant, Extrapolation | null>; tor: Tornado | null; poolNow: readonly PoolEquivalent[] },
): void {
  const { md } = out;
  const { p, devices, head, ex, tor, poolNow } = v;
  md.push("## Verdict", "");
  if (ex.peak && ex.measured) {
    md.push(
      verdictText({
        devices,
        workload: head,
        peak: ex.peak,
        measured: ex.measured,
        pool: ex.pool,
        tornado: tor,
        poolNow: poolNow.reduce<(typeof poolNow)[number] | null>((best, e) => (best === null || e.h100Equivalents > best.h100Equivalents ? e : best), null),
        availability: p.availability.central.value,
        sustained: p.sustained.central.value,
        redundancy: p.redundancy.central.value,
        downlinkMbps: p.network.downlinkMbps.value,
      }),
      "",
    );
  }
}
