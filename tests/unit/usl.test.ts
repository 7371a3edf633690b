import { describe, expect, it } from "vitest";
import { EdgepoolError } from "../../shared/errors.js";
import { fitUsl, uslPeakN, uslPredict, type UslPoint } from "../../shared/usl.js";

const NS = [1, 2, 4, 8, 16, 32, 64, 128, 256];

function synthetic(params: { lambda: number; sigma: number; kappa: number }, ns: readonly number[], noise = 0, seed = 7): UslPoint[] {
  // A small LCG so the noisy points are the same on every run.
  let s = seed;
  const uniform = () => {
    s = (s * 1664525 + 1013904223) % 2 ** 32;
    return s / 2 ** 32;
  };
  return ns.map((n) => ({ n, x: uslPredict(params, n) * (1 + noise * (2 * uniform() - 1)) }));
}

describe("fitUsl", () => {
  it("recovers λ, σ and κ from exact points", () => {
    const truth = { lambda: 120, sigma: 0.03, kappa: 2e-4 };
    const fit = fitUsl(synthetic(truth, NS));
    expect(fit.lambda).toBeCloseTo(120, 4);
    expect(fit.sigma).toBeCloseTo(0.03, 6);
    expect(fit.kappa / 2e-4).toBeCloseTo(1, 4);
    expect(fit.r2).toBeGreaterThan(0.999999);
  });

  it("recovers them within a few percent from points with ±2% noise", () => {
    const truth = { lambda: 50, sigma: 0.05, kappa: 5e-4 };
    const fit = fitUsl(synthetic(truth, NS, 0.02));
    expect(Math.abs(fit.lambda / 50 - 1)).toBeLessThan(0.05);
    expect(Math.abs(fit.sigma - 0.05)).toBeLessThan(0.01);
    expect(Math.abs(fit.kappa / 5e-4 - 1)).toBeLessThan(0.2);
    expect(fit.r2).toBeGreaterThan(0.99);
  });

  it("finds λ when no point is at N = 1", () => {
    const truth = { lambda: 10, sigma: 0.1, kappa: 1e-3 };
    const fit = fitUsl(synthetic(truth, [4, 8, 16, 32, 64]));
    expect(fit.lambda).toBeCloseTo(10, 3);
    expect(fit.sigma).toBeCloseTo(0.1, 4);
    expect(fit.kappa / 1e-3).toBeCloseTo(1, 3);
  });

  it("gives σ ≈ 0 and κ ≈ 0 for linear scaling, with no peak", () => {
    const fit = fitUsl(NS.map((n) => ({ n, x: 7.5 * n })));
    expect(fit.lambda).toBeCloseTo(7.5, 6);
    expect(fit.sigma).toBeLessThan(1e-9);
    expect(fit.kappa).toBeLessThan(1e-12);
    expect(fit.peakN).toBe(Infinity);
    expect(fit.peakX).toBe(Infinity);
    expect(fit.r2).toBeCloseTo(1, 9);
  });

  it("keeps σ and κ non-negative for superlinear points", () => {
    const fit = fitUsl(NS.map((n) => ({ n, x: n ** 1.1 })));
    expect(fit.sigma).toBeGreaterThanOrEqual(0);
    expect(fit.kappa).toBeGreaterThanOrEqual(0);
  });

  it("reports the peak at sqrt((1 − σ)/κ) and the throughput there", () => {
    const truth = { lambda: 100, sigma: 0.02, kappa: 1e-4 };
    const fit = fitUsl(synthetic(truth, NS));
    const expectedPeak = Math.sqrt((1 - 0.02) / 1e-4);
    expect(expectedPeak).toBeCloseTo(98.99, 2);
    expect(fit.peakN).toBeCloseTo(expectedPeak, 2);
    expect(fit.peakX).toBeCloseTo(uslPredict(truth, expectedPeak), 2);
    // It is the maximum: neighbours on either side are lower.
    expect(uslPredict(fit, fit.peakN - 5)).toBeLessThan(fit.peakX);
    expect(uslPredict(fit, fit.peakN + 5)).toBeLessThan(fit.peakX);
  });

  it("gives the ceiling λ/σ as peakX when there is contention but no coherency cost", () => {
    const fit = fitUsl(synthetic({ lambda: 20, sigma: 0.1, kappa: 0 }, NS));
    expect(fit.kappa).toBeLessThan(1e-9);
    if (fit.kappa === 0) {
      expect(fit.peakN).toBe(Infinity);
      expect(fit.peakX).toBeCloseTo(200, 6);
    } else {
      expect(fit.peakN).toBeGreaterThan(1000);
    }
  });

  it("uslPeakN follows the formula and its edge cases", () => {
    expect(uslPeakN(0.5, 0.005)).toBeCloseTo(10, 9);
    expect(uslPeakN(0.1, 0)).toBe(Infinity);
    expect(uslPeakN(1.2, 0.01)).toBe(1);
  });

  it("refuses fewer than three distinct N and invalid points", () => {
    const err = (() => {
      try {
        fitUsl([
          { n: 1, x: 1 },
          { n: 1, x: 1.1 },
          { n: 2, x: 2 },
        ]);
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    expect(err).toBeInstanceOf(EdgepoolError);
    expect((err as EdgepoolError).code).toBe("E_BAD_REQUEST");
    expect(() => fitUsl([{ n: 0, x: 1 }, { n: 2, x: 2 }, { n: 3, x: 3 }])).toThrow(/n must be positive/);
  });
});
