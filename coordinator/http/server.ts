/**
 * The coordinator's one port: an HTTP or HTTPS server with the timeouts that cut off slow or
 * silent peers, and a close in two stages. `drain()` stops listening and lets every request
 * in flight finish: idle keep-alive connections close at once, and each answer given from
 * then on says `Connection: close` (or, if its headers went earlier, its connection is closed
 * once idle), so the server empties without waiting out keep-alive timeouts. `cut()` then
 * closes every HTTP connection still open. WebSocket connections are the gateway's, not this
 * module's: the server's close waits for them too.
 */
import http, { type IncomingMessage, type ServerResponse } from "node:http";
import https from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import { EdgepoolError } from "../../shared/errors.js";

export interface HttpListenerOptions {
  /** Serve https with this certificate chain and key (PEM). */
  tls: { cert: string; key: string } | null;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
}

/** A peer that keeps a refused connection open is cut off after this. */
const LINGER_MS = 1000;

export class HttpListener {
  private readonly server: http.Server | https.Server;
  /** Answers not yet finished, so a drain can ask them to close their connection. */
  private readonly open = new Set<ServerResponse>();
  private draining = false;
  /** Settles once the server is closed and every connection (WebSockets too) has ended. */
  private ended: Promise<void> | null = null;

  constructor(
    opts: HttpListenerOptions,
    onRequest: (req: IncomingMessage, res: ServerResponse) => void,
    onUpgrade: (req: IncomingMessage, socket: Duplex, head: Buffer) => void,
  ) {
    const tracked = (req: IncomingMessage, res: ServerResponse): void => {
      if (this.draining) res.setHeader("connection", "close");
      this.open.add(res);
      res.once("close", () => this.open.delete(res));
      res.once("finish", () => {
        // After Node has marked the connection idle, which it does on this same event.
        if (this.draining) setImmediate(() => this.server.closeIdleConnections());
      });
      onRequest(req, res);
    };
    // Slow or silent peers are cut off: headers within headersTimeoutMs (checked every
    // quarter of it, not Node's default 30 s), a whole request within requestTimeoutMs, an idle
    // keep-alive connection after keepAliveTimeoutMs, a TLS handshake within headersTimeoutMs.
    const serverOptions: http.ServerOptions = {
      headersTimeout: opts.headersTimeoutMs,
      requestTimeout: opts.requestTimeoutMs,
      keepAliveTimeout: opts.keepAliveTimeoutMs,
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(opts.headersTimeoutMs / 4))),
    };
    this.server = opts.tls
      ? https.createServer({ ...serverOptions, cert: opts.tls.cert, key: opts.tls.key, handshakeTimeout: opts.headersTimeoutMs }, tracked)
      : http.createServer(serverOptions, tracked);
    this.server.on("upgrade", onUpgrade);
    this.server.on("clientError", (err: NodeJS.ErrnoException, socket: Duplex) => {
      // Unparseable requests, headers over 16 KiB, headers or requests too slow: a status, then close.
      const status = err.code === "HPE_HEADER_OVERFLOW" ? "431 Request Header Fields Too Large" : err.code === "ERR_HTTP_REQUEST_TIMEOUT" ? "408 Request Timeout" : "400 Bad Request";
      if (socket.writable) socket.end(`HTTP/1.1 ${status}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
    });
  }

  /** Listens; a port in use or a bad host is E_CONFIG naming the flags to change. */
  listen(port: number, host: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const onError = (err: Error) =>
        reject(new EdgepoolError("E_CONFIG", `cannot listen on ${host}:${port}: ${err.message}; pick another --port or --host`, { cause: err }));
      this.server.once("error", onError);
      this.server.listen(port, host, () => {
        this.server.off("error", onError);
        resolve();
      });
    });
  }

  get listening(): boolean {
    return this.server.listening;
  }

  /** The port it listens on (the one picked, for port 0). */
  get port(): number {
    return (this.server.address() as AddressInfo).port;
  }

  /**
   * Stage one: stops listening and lets what is in flight finish (see the header). Resolves
   * when every connection has ended; safe to call twice (the same promise).
   */
  drain(): Promise<void> {
    this.ended ??= new Promise<void>((resolve) => {
      this.draining = true;
      for (const res of this.open) if (!res.headersSent) res.setHeader("connection", "close");
      // A server that never listened has nothing to end (and close() would report that as an error).
      if (!this.server.listening) return resolve();
      this.server.close(() => resolve());
    });
    return this.ended;
  }

  /** Stage two: closes every HTTP connection still open, mid-answer or not. */
  cut(): void {
    this.server.closeAllConnections();
  }
}
