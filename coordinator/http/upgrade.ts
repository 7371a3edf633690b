/**
 * Who may open a worker WebSocket: the path, the caps on connections (--max-workers,
 * --max-handshakes), the coordinator still taking work, then the token. Any refusal is a
 * plain HTTP answer on the raw socket before a WebSocket opens, so a refused peer costs no
 * WebSocket state.
 */
import type { IncomingMessage } from "node:http";
import type { Duplex } from "node:stream";
import type { Logger } from "pino";
import type { WebSocket, WebSocketServer } from "ws";
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import { type Authenticator, redactUrl, refuseUpgrade } from "./auth.js";
import { parseRequestUrl } from "./http-util.js";

/** Connections refused for being over a cap are logged at most this often (with a count). */
const REFUSAL_LOG_MS = 10_000;

/** What the gate counts and hands accepted sockets to (the worker gateway). */
export interface UpgradeTarget {
  readonly connections: number;
  readonly handshaking: number;
  accept(ws: WebSocket, req: IncomingMessage): void;
}

export interface UpgradeGateOptions {
  maxWorkers: number;
  maxHandshakes: number;
}

export class UpgradeGate {
  /** Refusals over a connection cap since the last log line, and when that line was written. */
  private capRefusals = { count: 0, loggedAt: 0 };

  constructor(
    private readonly wss: WebSocketServer,
    private readonly target: UpgradeTarget,
    private readonly auth: Authenticator,
    private readonly opts: UpgradeGateOptions,
    private readonly acceptingWork: () => boolean,
    private readonly log: Logger,
  ) {}

  /** The server's upgrade listener: nothing a peer sends may throw out of it (it would end the process). */
  readonly listener = (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    try {
      this.upgrade(req, socket, head);
    } catch (err) {
      this.log.error({ err: toEdgepoolError(err).message, url: redactUrl(req.url) }, "upgrade failed");
      socket.destroy();
    }
  };

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    let url: URL;
    try {
      url = parseRequestUrl(req.url).url;
    } catch (err) {
      refuseUpgrade(socket, toEdgepoolError(err));
      return;
    }
    if (url.pathname !== "/" && url.pathname !== "/ws") {
      socket.end("HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n");
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    if (!this.acceptingWork()) {
      refuseUpgrade(socket, new EdgepoolError("E_UNAVAILABLE", "the coordinator is shutting down; the worker reconnects once it is back"));
      return;
    }
    const { connections, handshaking } = this.target;
    const full =
      connections >= this.opts.maxWorkers
        ? `the pool is full: ${connections} WebSocket connections (--max-workers ${this.opts.maxWorkers}); retry later`
        : handshaking >= this.opts.maxHandshakes
          ? `${handshaking} connections are still handshaking (--max-handshakes ${this.opts.maxHandshakes}); retry later`
          : null;
    if (full !== null) {
      const now = Date.now();
      this.capRefusals.count += 1;
      if (now - this.capRefusals.loggedAt >= REFUSAL_LOG_MS) {
        this.log.warn({ refused: this.capRefusals.count, connections, handshaking, err: full }, "worker connections refused: over a cap");
        this.capRefusals = { count: 0, loggedAt: now };
      }
      refuseUpgrade(socket, new EdgepoolError("E_UNAVAILABLE", full));
      return;
    }
    // Refused before the WebSocket opens: a plain 401/403 on the raw socket.
    try {
      this.auth.upgradeAccess(req, url);
    } catch (err) {
      const e = toEdgepoolError(err);
      this.log.warn({ remote: `${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? 0}`, code: e.code, err: e.message }, "worker refused: bad or missing token");
      refuseUpgrade(socket, e);
      return;
    }
    this.wss.handleUpgrade(req, socket, head, (ws) => this.target.accept(ws, req));
  }
}
