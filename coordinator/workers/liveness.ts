/**
 * The heartbeat, in one place. Four times per heartbeat timeout every worker is pinged; a
 * worker that has said nothing and answered no ping for three of those periods is cut off
 * (its shards go elsewhere), so a dead worker is declared dead within `heartbeatTimeoutMs`
 * while a live one has had three pings to answer. The gateway reports every message and pong
 * it admits (`heard`). Each tick also withdraws shards past their deadline and pumps, since
 * shards can fall behind with no event to notice it (stragglers).
 */
import type { Logger } from "pino";
import type { WorkerSession } from "./session.js";

/** What liveness needs of the scheduler. */
export interface LivenessTarget {
  readonly workers: ReadonlySet<WorkerSession>;
  checkDeadlines(now: number): void;
  pump(): void;
}

export class Liveness {
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly log: Logger,
    private readonly target: LivenessTarget,
    private readonly heartbeatTimeoutMs: number,
  ) {}

  /** The worker sent a message or answered a ping: it is alive now. */
  heard(session: WorkerSession): void {
    session.heard();
  }

  /** Starts the ticks (a rescheduled timeout, so a slow tick never overlaps the next). */
  start(): void {
    if (this.closed || this.timer) return;
    this.schedule();
  }

  /** Stops the ticks; safe to call twice. */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    const every = Math.max(100, Math.floor(this.heartbeatTimeoutMs / 4));
    const scheduledAt = Date.now();
    this.timer = setTimeout(() => {
      this.tick(every, scheduledAt);
      if (!this.closed) this.schedule();
    }, every);
    this.timer.unref();
  }

  private tick(every: number, scheduledAt: number): void {
    const now = Date.now();
    // If this process was itself blocked, workers' messages sat unread: silence proves
    // nothing this round. Ping everyone and judge on the next tick.
    const blocked = now - scheduledAt > 2 * every;
    if (blocked) this.log.warn({ lateMs: now - scheduledAt - every }, "coordinator event loop was blocked; liveness check skipped once");
    for (const w of this.target.workers) {
      if (!blocked && now - w.lastSeen >= this.heartbeatTimeoutMs - every) {
        this.log.warn({ worker: w.name, silentMs: now - w.lastSeen, requeued: w.inflight }, "worker unresponsive; disconnecting");
        w.link.terminate();
      } else if (w.link.isOpen) {
        w.link.ping();
      }
    }
    if (!blocked) this.target.checkDeadlines(now);
    this.target.pump();
  }
}
