/**
 * Pooled throughput: counts of accepted work, kept as per-second buckets over a sliding
 * window so rates are cheap to read at any moment, plus lifetime totals.
 */

export interface WorkDone {
  shards: number;
  samples: number;
  flops: number;
}

export interface Rates {
  shardsPerSec: number;
  samplesPerSec: number;
  gflopsPerSec: number;
}

interface Bucket extends WorkDone {
  second: number;
}

export class Throughput {
  private readonly buckets: Bucket[] = [];
  readonly total: WorkDone = { shards: 0, samples: 0, flops: 0 };
  /** Most shards completed in any one second so far. */
  peakShardsPerSec = 0;

  constructor(
    private readonly windowSec = 10,
    private readonly now: () => number = Date.now,
  ) {}

  record(samples: number, flops: number): void {
    const second = Math.floor(this.now() / 1000);
    let last = this.buckets[this.buckets.length - 1];
    if (!last || last.second !== second) {
      last = { second, shards: 0, samples: 0, flops: 0 };
      this.buckets.push(last);
      this.trim(second);
    }
    last.shards += 1;
    if (last.shards > this.peakShardsPerSec) this.peakShardsPerSec = last.shards;
    last.samples += samples;
    last.flops += flops;
    this.total.shards += 1;
    this.total.samples += samples;
    this.total.flops += flops;
  }

  /**
   * Rates over the whole seconds of the window since work was first recorded in it (the
   * current partial second excluded), so a burst shorter than the window is not diluted.
   */
  rates(): Rates {
    const nowSec = Math.floor(this.now() / 1000);
    this.trim(nowSec);
    const first = this.buckets[0]?.second ?? nowSec;
    const span = Math.min(this.windowSec, nowSec - first);
    if (span <= 0) return { shardsPerSec: 0, samplesPerSec: 0, gflopsPerSec: 0 };
    let shards = 0;
    let samples = 0;
    let flops = 0;
    for (const b of this.buckets) {
      if (b.second >= nowSec) continue;
      shards += b.shards;
      samples += b.samples;
      flops += b.flops;
    }
    const w = span;
    return { shardsPerSec: shards / w, samplesPerSec: samples / w, gflopsPerSec: flops / w / 1e9 };
  }

  /** True when anything was recorded within the window. */
  active(): boolean {
    const last = this.buckets[this.buckets.length - 1];
    return last !== undefined && last.second >= Math.floor(this.now() / 1000) - this.windowSec;
  }

  private trim(nowSec: number): void {
    while (this.buckets.length > 0 && this.buckets[0]!.second < nowSec - this.windowSec) this.buckets.shift();
  }
}
