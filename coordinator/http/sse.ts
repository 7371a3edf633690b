/**
 * GET /api/events: a server-sent event stream of dashboard snapshots.
 *
 * One shared ticker serves every open stream. It runs only while a client listens: the
 * first client starts it, the last one to leave stops it. Each tick builds one snapshot per
 * view (everything, or one owner's jobs when tokens are in use), serializes it once and
 * writes the same bytes to every client of that view; a new client gets one at once. A client whose socket is not keeping up (write returned false) is skipped until it
 * drains, so a slow reader cannot grow the coordinator's memory. `close()` ends every open
 * response and refuses new ones, so the HTTP server's own close can finish.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { EdgepoolError } from "../../shared/errors.js";

/** Whose jobs a stream shows: null for all of them. */
export type View = string | null;

interface Client {
  res: ServerResponse;
  view: View;
  /** True while the socket's buffer is full. */
  blocked: boolean;
}

export class EventStream {
  private readonly clients = new Set<Client>();
  private timer: NodeJS.Timeout | null = null;
  private readonly last = new Map<View, { at: number; frame: string }>();
  private closed = false;

  /** `snapshot` is called at most once per tick and view, whatever the number of clients. */
  constructor(
    private readonly snapshot: (view: View) => unknown,
    private readonly intervalMs = 1000,
  ) {}

  /** Number of open streams. */
  get size(): number {
    return this.clients.size;
  }

  /** Takes over the response: event-stream headers, a snapshot now, then one per tick. */
  open(req: IncomingMessage, res: ServerResponse, view: View = null): void {
    if (this.closed) throw new EdgepoolError("E_UNAVAILABLE", "the coordinator is shutting down; the dashboard reconnects once it is back");
    res.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-store",
      "x-accel-buffering": "no",
      "x-content-type-options": "nosniff",
    });
    req.socket.setNoDelay(true);
    const client: Client = { res, view, blocked: false };
    this.clients.add(client);
    res.on("close", () => {
      this.clients.delete(client);
      if (this.clients.size === 0) this.stop();
    });
    res.on("drain", () => {
      client.blocked = false;
    });
    // Reconnect after 2 s if the stream drops (EventSource's default is 3 s).
    res.write("retry: 2000\n\n");
    this.send(client, this.frame(view, false));
    this.schedule();
  }

  /** Ends every open stream and stops the ticker. Safe to call twice. */
  close(): void {
    this.closed = true;
    this.stop();
    for (const c of this.clients) c.res.end();
    this.clients.clear();
  }

  private schedule(): void {
    if (this.timer !== null || this.closed || this.clients.size === 0) return;
    this.timer = setTimeout(() => {
      this.timer = null;
      const frames = new Map<View, string>();
      for (const c of this.clients) {
        let frame = frames.get(c.view);
        if (frame === undefined) {
          frame = this.frame(c.view, true);
          frames.set(c.view, frame);
        }
        this.send(c, frame);
      }
      this.schedule();
    }, this.intervalMs);
    this.timer.unref();
  }

  private stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.last.clear();
  }

  /** The current snapshot as one SSE frame; a client joining reuses one under a tick old. */
  private frame(view: View, fresh: boolean): string {
    const now = Date.now();
    const last = this.last.get(view);
    if (!fresh && last !== undefined && now - last.at < this.intervalMs) return last.frame;
    const frame = `event: snapshot\ndata: ${JSON.stringify(this.snapshot(view))}\n\n`;
    this.last.set(view, { at: now, frame });
    return frame;
  }

  private send(c: Client, frame: string): void {
    if (c.blocked || c.res.writableEnded || c.res.destroyed) return;
    if (!c.res.write(frame)) c.blocked = true;
  }
}
