/**
 * What this worker has done: shards, samples, errors, compute time. A summary is logged at
 * info every interval in which there was work, and never while idle, so a quiet worker
 * writes no log lines.
 */
import type { Logger } from "pino";

export interface WorkerStatsSnapshot {
  shardsDone: number;
  samplesDone: number;
  shardErrors: number;
  /** Compute milliseconds summed over shards (can exceed wall time when slots > 1). */
  busyMs: number;
  /** Rest milliseconds planned after shards to keep under the CPU cap, summed over shards. */
  throttleMs: number;
}

export interface LoadGauge {
  running: number;
  queued: number;
  /** Slots resting after a shard to keep under the CPU cap. */
  resting: number;
  slots: number;
}

export class WorkerStats {
  private totals: WorkerStatsSnapshot = { shardsDone: 0, samplesDone: 0, shardErrors: 0, busyMs: 0, throttleMs: 0 };
  private timer: NodeJS.Timeout | null = null;

  recordDone(rows: number, computeMs: number, throttleMs: number): void {
    this.totals.shardsDone += 1;
    this.totals.samplesDone += rows;
    this.totals.busyMs += computeMs;
    this.totals.throttleMs += throttleMs;
  }

  recordError(): void {
    this.totals.shardErrors += 1;
  }

  snapshot(): WorkerStatsSnapshot {
    return { ...this.totals };
  }

  /** Logs a summary every `intervalMs` while there is work; `gauge` reports the current load. */
  startSummary(log: Logger, intervalMs: number, gauge: () => LoadGauge): void {
    this.stopSummary();
    let last = this.snapshot();
    let lastAt = performance.now();
    // A rescheduled timeout rather than setInterval: a summary never queues behind a late one.
    const tick = (): void => {
      const now = this.snapshot();
      const at = performance.now();
      const load = gauge();
      const shards = now.shardsDone - last.shardsDone;
      const errors = now.shardErrors - last.shardErrors;
      if (shards > 0 || errors > 0 || load.running > 0 || load.resting > 0) {
        const wallMs = at - lastAt;
        const samples = now.samplesDone - last.samplesDone;
        const busyMs = now.busyMs - last.busyMs;
        const throttleMs = now.throttleMs - last.throttleMs;
        log.info(
          {
            shards,
            samples,
            errors,
            samplesPerSec: wallMs > 0 ? Math.round((samples * 1000 * 10) / wallMs) / 10 : 0,
            busy: wallMs > 0 ? Math.round((busyMs / (wallMs * load.slots)) * 1000) / 1000 : 0,
            throttleMs: Math.round(throttleMs),
            running: load.running,
            resting: load.resting,
            queued: load.queued,
            totalShards: now.shardsDone,
            totalSamples: now.samplesDone,
          },
          "work summary",
        );
      }
      last = now;
      lastAt = at;
      this.timer = setTimeout(tick, intervalMs);
      this.timer.unref();
    };
    this.timer = setTimeout(tick, intervalMs);
    this.timer.unref();
  }

  stopSummary(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }
}
