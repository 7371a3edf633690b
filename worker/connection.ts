/**
 * The worker's WebSocket to the coordinator, kept up for as long as it is open.
 *
 * Lifecycle: `idle` → `start()` → dialling ⇄ open, with a backoff wait between a drop and the
 * next dial, until `close()` → `closed` (final). Every drop, refused dial or dial that times
 * out schedules the next attempt after an exponential delay with jitter, between
 * `reconnectMinMs` and `reconnectMaxMs`; a connection that opens resets the delay. Liveness
 * is checked by pinging: a coordinator that has not answered one ping by the next is treated
 * as gone (a half-open TCP connection otherwise looks healthy for hours).
 *
 * A coordinator that refuses the worker's token (HTTP 401/403 instead of the upgrade) is
 * logged as an error and dialled again at the longest backoff: a worker runs as a service on
 * machines nobody watches, and once the coordinator's tokens are fixed every worker comes
 * back by itself, where exiting would need someone at each machine (and systemd gives up on
 * a unit that keeps failing fast). An untrusted TLS certificate is treated the same way.
 *
 * Callers see typed events only: `connected`, `text`, `binary`, `disconnected`.
 */
import { clientMaskOptions, messageBytes, sendCoalesced } from "../shared/node/ws-send.js";
import { EventEmitter } from "node:events";
import type { Logger } from "pino";
import { WebSocket } from "ws";
import { backoffDelay } from "../shared/backoff.js";
import { EdgepoolError, toEdgepoolError } from "../shared/errors.js";
import { tlsError } from "../shared/node/tls.js";
import { authHeader } from "../shared/token.js";

export { backoffDelay };

export interface ConnectionOptions {
  url: string;
  log: Logger;
  reconnectMinMs: number;
  reconnectMaxMs: number;
  connectTimeoutMs: number;
  pingIntervalMs: number;
  maxPayloadBytes: number;
  /** Worker token, sent as `Authorization: Bearer` with the upgrade request; never logged. */
  token?: string | undefined;
  /** CA certificates (PEM) to trust for wss://, besides Node's own. */
  ca?: string | undefined;
}

export interface DisconnectInfo {
  code: number;
  reason: string;
  /** False when the dial itself failed (no connection was ever open). */
  wasOpen: boolean;
}

export interface ConnectionEvents {
  connected: [];
  text: [text: string];
  binary: [bytes: Uint8Array];
  disconnected: [info: DisconnectInfo];
}

export type ConnectionState = "idle" | "dialling" | "open" | "waiting" | "closed";

export class Connection extends EventEmitter<ConnectionEvents> {
  private stateValue: ConnectionState = "idle";
  private socket: WebSocket | null = null;
  private attempt = 0;
  private reconnectTimer: NodeJS.Timeout | null = null;
  private pingTimer: NodeJS.Timeout | null = null;
  private awaitingPong = false;
  /** Why the last dial or connection failed, for the reconnect log line. */
  private lastError: string | undefined;

  constructor(private readonly opts: ConnectionOptions) {
    super();
  }

  get state(): ConnectionState {
    return this.stateValue;
  }

  get isOpen(): boolean {
    return this.stateValue === "open" && this.socket?.readyState === WebSocket.OPEN;
  }

  /** Dials the coordinator now; later drops redial on their own until close(). */
  start(): void {
    if (this.stateValue !== "idle") return;
    this.dial();
  }

  /** Sends a text or binary message; false when no connection is open (the message is dropped). */
  /** Sends a message; `sent` (if given) is called once it is written out or has failed. */
  send(data: string | Uint8Array, sent?: (err?: Error) => void): boolean {
    if (!this.isOpen || !this.socket) return false;
    sendCoalesced(this.socket, data, sent);
    return true;
  }

  /** Bytes queued on the socket but not yet written to the network. */
  get bufferedAmount(): number {
    return this.socket?.bufferedAmount ?? 0;
  }

  /** Drops the current connection (for example, no welcome in time); a redial follows. */
  drop(reason: string): void {
    if (!this.socket) return;
    this.opts.log.warn({ reason }, "dropping coordinator connection");
    this.socket.terminate();
  }

  /**
   * Stops for good: no more redials, every timer cleared, the socket closed (and cut off if
   * the peer does not finish the close handshake in time). Safe to call more than once.
   */
  close(code = 1000, reason = "worker closing"): Promise<void> {
    if (this.stateValue === "closed") return Promise.resolve();
    this.stateValue = "closed";
    this.clearReconnect();
    this.clearPing();
    const socket = this.socket;
    if (!socket || socket.readyState === WebSocket.CLOSED) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const cutoff = setTimeout(() => socket.terminate(), 2000);
      cutoff.unref();
      socket.once("close", () => {
        clearTimeout(cutoff);
        resolve();
      });
      if (socket.readyState === WebSocket.CONNECTING) socket.terminate();
      else socket.close(code, reason);
    });
  }

  private dial(): void {
    if (this.stateValue === "closed") return;
    this.stateValue = "dialling";
    const socket = new WebSocket(this.opts.url, {
      // Tensors are dense floats that do not compress; deflate would only cost CPU.
      perMessageDeflate: false,
      handshakeTimeout: this.opts.connectTimeoutMs,
      maxPayload: this.opts.maxPayloadBytes,
      headers: authHeader(this.opts.token),
      ...(this.opts.ca ? { ca: this.opts.ca } : {}),
      ...clientMaskOptions(this.opts.url),
    });
    this.socket = socket;
    let opened = false;
    /** Set when the coordinator refused this dial for a reason a person must fix (token, certificate). */
    let refused: EdgepoolError | null = null;
    const refuse = (e: EdgepoolError, fields: Record<string, unknown> = {}): void => {
      refused = e;
      this.lastError = e.message;
      this.opts.log.error({ url: this.opts.url, code: e.code, err: e.message, ...fields }, "coordinator refused the connection");
    };

    socket.on("open", () => {
      if (this.socket !== socket) return;
      opened = true;
      this.attempt = 0;
      this.lastError = undefined;
      this.stateValue = "open";
      this.startPing(socket);
      this.opts.log.info({ url: this.opts.url }, "connected to coordinator");
      this.emit("connected");
    });
    socket.on("message", (data, isBinary) => {
      if (this.socket !== socket) return;
      this.awaitingPong = false;
      if (isBinary) {
        // A plain Uint8Array view, not the Buffer: Buffer#slice() makes views rather than
        // copies, so a frame decoder that copies an unaligned frame with slice() would get
        // the same unaligned bytes back. ws hands out unaligned slices when several
        // messages arrive in one read.
        const buf = messageBytes(data);
        this.emit("binary", new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength));
      } else this.emit("text", messageBytes(data).toString("utf8"));
    });
    socket.on("pong", () => {
      this.awaitingPong = false;
    });
    socket.on("unexpected-response", (_req, res) => {
      if (this.socket !== socket) return;
      const status = res.statusCode ?? 0;
      res.resume();
      if (status === 401) {
        refuse(
          new EdgepoolError(
            "E_AUTH",
            this.opts.token
              ? "the coordinator does not accept this worker's token (HTTP 401); check the worker token given with --token or EDGEPOOL_TOKEN"
              : "the coordinator requires a worker token (HTTP 401); pass it with --token or set EDGEPOOL_TOKEN",
          ),
          { status },
        );
      } else if (status === 403) {
        refuse(new EdgepoolError("E_FORBIDDEN", "the coordinator refused this token for workers (HTTP 403); give the worker a worker token with --token or EDGEPOOL_TOKEN"), { status });
      } else {
        this.lastError = `the coordinator answered HTTP ${status} instead of accepting the WebSocket`;
      }
      // Aborts the handshake; "error" and then "close" follow, and the close redials.
      socket.terminate();
    });
    socket.on("error", (err) => {
      // A "close" always follows; that is where redialling happens.
      if (refused) return;
      const tls = tlsError(err, this.opts.url);
      if (tls) {
        refuse(tls);
        return;
      }
      this.lastError = toEdgepoolError(err).message;
      this.opts.log.debug({ url: this.opts.url, err: this.lastError }, "coordinator socket error");
    });
    socket.on("close", (code, reasonBytes) => {
      if (this.socket !== socket) return;
      this.socket = null;
      this.clearPing();
      const reason = reasonBytes.toString("utf8");
      if (opened) this.opts.log.info({ code, reason }, "disconnected from coordinator");
      else this.lastError ??= `closed with code ${code} before the connection opened`;
      // Redialling fast cannot fix a refused token or certificate: wait the longest backoff.
      if (refused) this.attempt = Math.max(this.attempt, 30);
      if (this.stateValue !== "closed") this.scheduleReconnect();
      this.emit("disconnected", { code, reason, wasOpen: opened });
    });
  }

  private scheduleReconnect(): void {
    const delayMs = backoffDelay(this.attempt, this.opts.reconnectMinMs, this.opts.reconnectMaxMs);
    this.attempt += 1;
    this.stateValue = "waiting";
    this.opts.log.info({ url: this.opts.url, attempt: this.attempt, delayMs, ...(this.lastError ? { err: this.lastError } : {}) }, "reconnecting to coordinator");
    this.lastError = undefined;
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = null;
      this.dial();
    }, delayMs);
  }

  private startPing(socket: WebSocket): void {
    this.clearPing();
    this.awaitingPong = false;
    const tick = (): void => {
      if (this.socket !== socket) return;
      if (this.awaitingPong) {
        this.opts.log.warn({ url: this.opts.url, pingIntervalMs: this.opts.pingIntervalMs }, "coordinator stopped answering pings");
        socket.terminate();
        return;
      }
      this.awaitingPong = true;
      socket.ping();
      this.pingTimer = setTimeout(tick, this.opts.pingIntervalMs);
      this.pingTimer.unref();
    };
    this.pingTimer = setTimeout(tick, this.opts.pingIntervalMs);
    this.pingTimer.unref();
  }

  private clearReconnect(): void {
    if (this.reconnectTimer) clearTimeout(this.reconnectTimer);
    this.reconnectTimer = null;
  }

  private clearPing(): void {
    if (this.pingTimer) clearTimeout(this.pingTimer);
    this.pingTimer = null;
  }
}
