/**
 * The arithmetic of the report, as pure functions: per-device rates measured by the pool,
 * the pool in H100-equivalents, the extrapolation to N devices, its sensitivity, and the
 * verdict text. For one workload M (CLAIM.md):
 *
 *   H100s = devices x sum_tier(share x rate x sustained x network) x availability / k / H100_rate(M)
 *
 * This module is the one entry point; each concept lives in its own file:
 * - measured-rates.ts: what this pool's real workers and jobs measured (virtual ones kept apart)
 * - h100-rate.ts: an H100's samples/s on a model, and this pool now in H100s
 * - extrapolation.ts: the formula above, its workloads, variants and knobs; coordinators needed
 * - verdict.ts: the sensitivity tornado, the comparison with the claim, the verdict text
 */
export {
  type JobEfficiency,
  type VirtualSummary,
  type WorkerModelRate,
  measuredShardSeconds,
  poolEfficiency,
  virtualSummary,
  workerRates,
} from "./measured-rates.js";
export {
  H100_MEASURED,
  H100_PEAK_UTIL,
  type PoolEquivalent,
  h100SamplesPerSec,
  poolInH100s,
} from "./h100-rate.js";
export {
  type Extrapolation,
  type Variant,
  type Workload,
  VARIANT_LABELS,
  coordinatorsNeeded,
  extrapolate,
  extrapolateWorkload,
  networkFactor,
  workloads,
} from "./extrapolation.js";
export {
  type Tornado,
  compareWithClaim,
  fmtCount,
  tornado,
  verdictText,
} from "./verdict.js";
