/**
 * Progress of a job on the client side, in one of three modes chosen once:
 * - `bar`: a redrawn progress bar (cli-progress) when the stream is a terminal;
 * - `lines`: one plain line every `intervalMs` when it is not (logs, CI, pipes), so a
 *   captured log stays readable;
 * - `none`: nothing (`--quiet`).
 * Rate and ETA come from the coordinator's own figures for the job, not from client timing.
 */
import cliProgress from "cli-progress";
import type { JobView } from "../coordinator/client/client.js";
import { fmtRate } from "./cli-util.js";

export type ProgressMode = "bar" | "lines" | "none";

export interface ProgressStream {
  write(s: string): boolean;
  isTTY?: boolean;
}

export function progressMode(stream: ProgressStream, quiet: boolean): ProgressMode {
  if (quiet) return "none";
  return stream.isTTY ? "bar" : "lines";
}

/** Seconds left at the job's current rate, or null before a rate is known. */
export function etaSeconds(j: Pick<JobView, "rows" | "samplesDone" | "samplesPerSec">): number | null {
  if (j.samplesPerSec <= 0) return null;
  return Math.max(0, (j.rows - j.samplesDone) / j.samplesPerSec);
}

export function fmtEta(secs: number | null): string {
  if (secs === null) return "--";
  if (secs < 60) return `${Math.ceil(secs)}s`;
  const m = Math.floor(secs / 60);
  if (m < 60) return `${m}m${String(Math.ceil(secs - m * 60)).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}

export class JobProgress {
  private bar: cliProgress.SingleBar | null = null;
  private lastLineAt = 0;

  constructor(
    readonly mode: ProgressMode,
    private readonly stream: ProgressStream,
    private readonly intervalMs = 2000,
  ) {}

  /** Shows the latest view of the job. */
  update(j: JobView): void {
    if (this.mode === "bar") {
      const payload = { rate: fmtRate(j.samplesPerSec), left: fmtEta(etaSeconds(j)), state: j.state };
      if (!this.bar) {
        this.bar = new cliProgress.SingleBar(
          {
            format: `job ${j.id} {bar} {percentage}% | {value}/{total} samples | {rate} samples/s | ETA {left}`,
            stream: this.stream as NodeJS.WritableStream,
            hideCursor: true,
            barsize: 24,
            fps: 10,
          },
          cliProgress.Presets.shades_classic,
        );
        this.bar.start(j.rows, j.samplesDone, payload);
      } else {
        this.bar.update(j.samplesDone, payload);
      }
      return;
    }
    if (this.mode === "lines") {
      const now = Date.now();
      if (j.state === "done" || now - this.lastLineAt < this.intervalMs) return;
      this.lastLineAt = now;
      this.stream.write(
        `job ${j.id}: ${j.samplesDone}/${j.rows} samples (${(j.progress * 100).toFixed(1)}%), ${fmtRate(j.samplesPerSec)} samples/s, ETA ${fmtEta(etaSeconds(j))}\n`,
      );
    }
  }

  /** Leaves the bar on screen at its last value and moves to a new line. Safe to call twice. */
  stop(): void {
    this.bar?.stop();
    this.bar = null;
  }

  /** Writes a message of its own line, without tearing a bar that is being drawn. */
  say(line: string): void {
    if (this.mode === "none") return;
    if (this.bar) this.stream.write("\n");
    this.stream.write(`${line}\n`);
  }
}
