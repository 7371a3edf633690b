/**
 * Universal Scalability Law (Gunther): throughput with N workers is
 *
 *   X(N) = λN / (1 + σ(N−1) + κN(N−1))
 *
 * λ is the rate of one worker, σ the contention (a serial share: the curve flattens
 * towards λ/σ) and κ the coherency cost (pairwise cross-talk: the curve peaks and falls).
 *
 * The fit starts from the classic linearisation: with λ from the smallest N, the deviation
 * λN/X − 1 = σ(N−1) + κN(N−1) is linear in (N−1, N(N−1)) and is solved by non-negative least
 * squares. That start is then refined on all three parameters at once by Levenberg-Marquardt
 * on the throughput residuals themselves (the linearisation weights the points unevenly),
 * keeping σ, κ ≥ 0 and λ > 0. No `node:` imports: the report page uses this file too.
 */
import { EdgepoolError } from "./errors.js";

export interface UslPoint {
  /** Workers (concurrency). */
  n: number;
  /** Measured throughput at `n`, in any unit (samples/s, shards/s). */
  x: number;
}

export interface UslFit {
  lambda: number;
  sigma: number;
  kappa: number;
  /** Coefficient of determination of the fitted curve against the measured throughputs. */
  r2: number;
  /** N at which throughput peaks: sqrt((1−σ)/κ); Infinity when κ = 0. */
  peakN: number;
  /** Throughput at `peakN`; with κ = 0 the ceiling approached instead (λ/σ, or Infinity). */
  peakX: number;
}

export interface UslParams {
  lambda: number;
  sigma: number;
  kappa: number;
}

/** Predicted throughput at `n` workers. */
export function uslPredict(fit: UslParams, n: number): number {
  return (fit.lambda * n) / (1 + fit.sigma * (n - 1) + fit.kappa * n * (n - 1));
}

/** Where the curve peaks, from σ and κ alone. */
export function uslPeakN(sigma: number, kappa: number): number {
  if (!(kappa > 0)) return Infinity;
  // σ ≥ 1 means adding the second worker already lowers throughput.
  if (sigma >= 1) return 1;
  return Math.sqrt((1 - sigma) / kappa);
}

function sse(points: readonly UslPoint[], p: UslParams): number {
  let s = 0;
  for (const { n, x } of points) {
    const r = x - uslPredict(p, n);
    s += r * r;
  }
  return s;
}

/** Solves the 3x3 system A·v = b by Gaussian elimination with partial pivoting; null if singular. */
function solve3(a: number[][], b: number[]): number[] | null {
  const m = a.map((row, i) => [...row, b[i]!]);
  for (let c = 0; c < 3; c++) {
    let pivot = c;
    for (let r = c + 1; r < 3; r++) if (Math.abs(m[r]![c]!) > Math.abs(m[pivot]![c]!)) pivot = r;
    if (Math.abs(m[pivot]![c]!) < 1e-300) return null;
    [m[c], m[pivot]] = [m[pivot]!, m[c]!];
    const row = m[c]!;
    for (let r = c + 1; r < 3; r++) {
      const other = m[r]!;
      const f = other[c]! / row[c]!;
      for (let k = c; k < 4; k++) other[k] = other[k]! - f * row[k]!;
    }
  }
  const v = [0, 0, 0];
  for (let r = 2; r >= 0; r--) {
    const row = m[r]!;
    let s = row[3]!;
    for (let k = r + 1; k < 3; k++) s -= row[k]! * v[k]!;
    v[r] = s / row[r]!;
  }
  return v.every(Number.isFinite) ? v : null;
}

/**
 * Least squares of y ≈ σ·a + κ·b with σ, κ ≥ 0 (two regressors, no intercept): the
 * unconstrained solution if it is feasible, else the better of the one-variable fits.
 */
function nonNegativeLs2(a: readonly number[], b: readonly number[], y: readonly number[]): { sigma: number; kappa: number } {
  let aa = 0, ab = 0, bb = 0, ay = 0, by = 0;
  for (let i = 0; i < y.length; i++) {
    aa += a[i]! * a[i]!;
    ab += a[i]! * b[i]!;
    bb += b[i]! * b[i]!;
    ay += a[i]! * y[i]!;
    by += b[i]! * y[i]!;
  }
  const det = aa * bb - ab * ab;
  if (det > 1e-12 * aa * bb) {
    const sigma = (ay * bb - by * ab) / det;
    const kappa = (by * aa - ay * ab) / det;
    if (sigma >= 0 && kappa >= 0) return { sigma, kappa };
  }
  const cost = (s: number, k: number) => {
    let c = 0;
    for (let i = 0; i < y.length; i++) {
      const r = y[i]! - s * a[i]! - k * b[i]!;
      c += r * r;
    }
    return c;
  };
  const candidates = [
    { sigma: 0, kappa: 0 },
    { sigma: aa > 0 ? Math.max(0, ay / aa) : 0, kappa: 0 },
    { sigma: 0, kappa: bb > 0 ? Math.max(0, by / bb) : 0 },
  ];
  let best = candidates[0]!;
  for (const c of candidates) if (cost(c.sigma, c.kappa) < cost(best.sigma, best.kappa)) best = c;
  return best;
}

function linearisedStart(points: readonly UslPoint[]): UslParams {
  const minN = Math.min(...points.map((p) => p.n));
  const atMin = points.filter((p) => p.n === minN);
  // λ is the per-worker rate at the smallest N measured (exact when that N is 1).
  const lambda = Math.max(Number.MIN_VALUE, atMin.reduce((s, p) => s + p.x / p.n, 0) / atMin.length);
  const a: number[] = [];
  const b: number[] = [];
  const y: number[] = [];
  for (const { n, x } of points) {
    if (!(x > 0)) continue;
    a.push(n - 1);
    b.push(n * (n - 1));
    y.push((lambda * n) / x - 1);
  }
  return { lambda, ...nonNegativeLs2(a, b, y) };
}

/** Levenberg-Marquardt on (λ, σ, κ) with Marquardt's diagonal scaling, projected onto σ, κ ≥ 0. */
function refine(points: readonly UslPoint[], start: UslParams): UslParams {
  let p = { ...start };
  let cost = sse(points, p);
  let damping = 1e-3;
  for (let iter = 0; iter < 500 && cost > 0; iter++) {
    const jtj = [
      [0, 0, 0],
      [0, 0, 0],
      [0, 0, 0],
    ];
    const jtr = [0, 0, 0];
    for (const { n, x } of points) {
      const d = 1 + p.sigma * (n - 1) + p.kappa * n * (n - 1);
      const f = (p.lambda * n) / d;
      const g = [n / d, (-p.lambda * n * (n - 1)) / (d * d), (-p.lambda * n * n * (n - 1)) / (d * d)];
      const r = x - f;
      for (let i = 0; i < 3; i++) {
        jtr[i] = jtr[i]! + g[i]! * r;
        for (let k = 0; k < 3; k++) jtj[i]![k] = jtj[i]![k]! + g[i]! * g[k]!;
      }
    }
    let improved = false;
    while (damping < 1e12) {
      const a = jtj.map((row, i) => row.map((v, k) => (i === k ? v + damping * Math.max(v, 1e-300) : v)));
      const step = solve3(a, jtr);
      if (step) {
        const next = {
          lambda: Math.max(Number.MIN_VALUE, p.lambda + step[0]!),
          sigma: Math.max(0, p.sigma + step[1]!),
          kappa: Math.max(0, p.kappa + step[2]!),
        };
        const nextCost = sse(points, next);
        if (nextCost < cost) {
          const relative = (cost - nextCost) / cost;
          p = next;
          cost = nextCost;
          damping = Math.max(1e-12, damping / 10);
          improved = relative > 1e-15;
          break;
        }
      }
      damping *= 10;
    }
    if (!improved) break;
  }
  return p;
}

/**
 * Fits the USL to measured (N, X) points by nonlinear least squares on X. Needs at least
 * three distinct N, all positive, and finite non-negative throughputs; throws E_BAD_REQUEST
 * otherwise.
 */
export function fitUsl(points: readonly UslPoint[]): UslFit {
  for (const p of points) {
    if (!(Number.isFinite(p.n) && p.n > 0) || !(Number.isFinite(p.x) && p.x >= 0)) {
      throw new EdgepoolError("E_BAD_REQUEST", `USL point (n=${p.n}, x=${p.x}) is invalid: n must be positive and x finite and non-negative`);
    }
  }
  const distinct = new Set(points.map((p) => p.n)).size;
  if (distinct < 3) {
    throw new EdgepoolError("E_BAD_REQUEST", `the USL has three parameters; measure at least three different worker counts (got ${distinct})`);
  }
  if (!points.some((p) => p.x > 0)) throw new EdgepoolError("E_BAD_REQUEST", "every measured throughput is zero; there is nothing to fit");

  const start = linearisedStart(points);
  const refined = refine(points, start);
  const best = sse(points, refined) <= sse(points, start) ? refined : start;

  const mean = points.reduce((s, p) => s + p.x, 0) / points.length;
  const sst = points.reduce((s, p) => s + (p.x - mean) ** 2, 0);
  const residual = sse(points, best);
  const r2 = sst > 0 ? 1 - residual / sst : residual === 0 ? 1 : 0;
  const peakN = uslPeakN(best.sigma, best.kappa);
  const peakX = Number.isFinite(peakN) ? uslPredict(best, peakN) : best.sigma > 0 ? best.lambda / best.sigma : Infinity;
  return { ...best, r2, peakN, peakX };
}
