/**
 * The WebSocket side of the coordinator: accepts worker connections, holds each to a hello
 * within a deadline, refuses protocol mismatches with a message naming both versions, and
 * routes text and binary messages to the scheduler. Malformed input is answered with a
 * typed `error` message and never throws out of a handler; a peer that keeps sending
 * garbage is disconnected.
 *
 * Limits, so that no peer can exhaust the coordinator: before its hello a connection may send
 * at most MAX_HELLO_BYTES (a hello is small; the frame limit is for results), every
 * connection has a token bucket of messages per second (E_RATE_LIMIT, closed, logged once),
 * text messages are at most MAX_TEXT_BYTES, and the counts of open and handshaking
 * connections are kept for the caps the coordinator applies before an upgrade.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Logger } from "pino";
import type { WebSocket } from "ws";
import { EdgepoolError, toEdgepoolError, wsCloseCodeFor } from "../../shared/errors.js";
import { messageBytes, sendCoalesced } from "../../shared/node/ws-send.js";
import { errorMessage, welcomeMessage } from "../../shared/protocol/encode.js";
import { checkProtocolVersion, parseResultFrame, parseWorkerText } from "../../shared/protocol/messages.js";
import { TokenBucket } from "./rate-limit.js";
import type { CoordinatorEvents } from "../observe/events.js";
import type { Scheduler } from "../scheduling/scheduler.js";
import type { Liveness } from "./liveness.js";
import { WorkerSession, type WorkerLink } from "./session.js";

const MAX_MALFORMED = 10;
/** Bytes a connection may send before its hello is accepted (a hello is well under 4 KiB). */
const MAX_HELLO_BYTES = 64 * 1024;
/** Largest text message: workers send hello, shard_error and draining, all small. */
const MAX_TEXT_BYTES = 1024 * 1024;

/** Where workers fetch models from, relative to the coordinator (see the HTTP routes). */
const MODEL_PATH = "/models";

/** A ws WebSocket as the session's narrow link; sends are coalesced per tick (ws-send.ts). */
export class WsLink implements WorkerLink {
  constructor(private readonly ws: WebSocket) {}

  send(data: string | Uint8Array, sent?: (err?: Error) => void): void {
    sendCoalesced(this.ws, data, sent);
  }

  close(code: number, reason: string): void {
    this.ws.close(code, reason);
  }

  terminate(): void {
    this.ws.terminate();
  }

  ping(): void {
    this.ws.ping();
  }

  pause(): void {
    this.ws.pause();
  }

  get isOpen(): boolean {
    return this.ws.readyState === this.ws.OPEN;
  }
}

export class WorkerGateway {
  /** Open WebSocket connections, handshaking or not. */
  connections = 0;
  /** Connections that have not said hello yet. */
  handshaking = 0;

  constructor(
    private readonly log: Logger,
    private readonly scheduler: Scheduler,
    private readonly events: CoordinatorEvents,
    private readonly liveness: Liveness,
    private readonly opts: { prefetch: number; helloTimeoutMs: number; maxMessagesPerSec: number },
  ) {}

  accept(socket: WebSocket, req: IncomingMessage): void {
    const remote = `${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? 0}`;
    const session = new WorkerSession(randomUUID(), new WsLink(socket), remote, this.opts.prefetch);
    this.connections += 1;
    this.handshaking += 1;
    let handshaking = true;
    const endHandshake = (): void => {
      if (!handshaking) return;
      handshaking = false;
      this.handshaking -= 1;
      clearTimeout(helloTimer);
      req.socket.off("data", countHelloBytes);
    };
    const helloTimer = setTimeout(() => {
      this.refuse(session, new EdgepoolError("E_TIMEOUT", `no hello within ${this.opts.helloTimeoutMs} ms`));
    }, this.opts.helloTimeoutMs);
    helloTimer.unref();
    // ws buffers a message until it is whole, up to the frame limit: before a hello, far less
    // is allowed, counted on the raw socket so that not even a partial message can grow.
    let helloBytes = 0;
    const countHelloBytes = (chunk: Buffer): void => {
      helloBytes += chunk.byteLength;
      if (helloBytes > MAX_HELLO_BYTES && session.state === "handshake") {
        endHandshake();
        this.refuse(session, new EdgepoolError("E_TOO_LARGE", `more than ${MAX_HELLO_BYTES} bytes sent before a hello`));
        // Not waiting for a close handshake: the rest of that message must not be buffered.
        socket.terminate();
      }
    };
    req.socket.on("data", countHelloBytes);
    const bucket = new TokenBucket(this.opts.maxMessagesPerSec, 2 * this.opts.maxMessagesPerSec);
    let limited = false;
    /** Takes a token for one incoming message; false once the connection is over its rate. */
    const admit = (): boolean => {
      if (limited) return false;
      if (bucket.take()) return true;
      limited = true;
      // Refused once: one log line per connection, however many messages follow.
      this.refuse(session, new EdgepoolError("E_RATE_LIMIT", `more than ${this.opts.maxMessagesPerSec} messages a second (burst ${2 * this.opts.maxMessagesPerSec}); disconnecting`));
      return false;
    };

    socket.on("message", (data, isBinary) => {
      // A result owed for a shard this worker was sent is its job, not a flood: it costs no
      // token, so the limit never throttles a fast worker on tiny shards. Anything beyond
      // what it was sent is charged.
      const owed = isBinary && session.takeOwedResult();
      if (!owed && !admit()) return;
      if (session.refused || session.state === "closed") return;
      this.liveness.heard(session);
      try {
        const bytes = messageBytes(data);
        if (isBinary) this.onBinary(session, bytes);
        else {
          if (bytes.byteLength > MAX_TEXT_BYTES) throw new EdgepoolError("E_TOO_LARGE", `text message of ${bytes.byteLength} bytes; the limit is ${MAX_TEXT_BYTES}`);
          this.onText(session, bytes.toString("utf8"), endHandshake);
        }
      } catch (err) {
        this.onMalformed(session, err);
      }
    });
    socket.on("ping", () => void admit());
    socket.on("pong", () => {
      if (admit()) this.liveness.heard(session);
    });
    socket.on("error", (err) => this.log.warn({ worker: session.name, err: err.message }, "worker socket error"));
    socket.on("close", (code) => {
      endHandshake();
      this.connections -= 1;
      const joined = session.joined;
      session.close();
      if (joined) this.events.emit("workerLeft", { workerId: session.id, name: session.name, code, requeued: session.inflight });
      this.scheduler.removeWorker(session);
    });
  }

  private onText(session: WorkerSession, text: string, endHandshake: () => void): void {
    const msg = parseWorkerText(text);
    if (msg.type === "hello") {
      if (session.state !== "handshake") throw new EdgepoolError("E_PROTOCOL", "hello sent twice on one connection");
      endHandshake();
      try {
        checkProtocolVersion(msg.protocol, `worker ${msg.name}`);
      } catch (err) {
        this.refuse(session, toEdgepoolError(err));
        return;
      }
      session.markReady(msg);
      session.send(welcomeMessage(msg.workerId, MODEL_PATH));
      this.events.emit("workerJoined", {
        workerId: msg.workerId, name: msg.name, platform: msg.platform, cpus: msg.cpus, threads: msg.threads, slots: msg.slots, virtual: msg.virtual, remote: session.remote,
      });
      this.scheduler.addWorker(session);
      return;
    }
    if (session.state === "handshake" || session.state === "closed") throw new EdgepoolError("E_PROTOCOL", "say hello before anything else");
    if (msg.type === "draining") this.scheduler.onDraining(session, msg);
    else this.scheduler.onShardError(session, msg);
  }

  private onBinary(session: WorkerSession, bytes: Uint8Array): void {
    if (session.state !== "ready" && session.state !== "draining") throw new EdgepoolError("E_PROTOCOL", "say hello before sending results");
    // Parsed here, so the scheduler only ever sees a well-formed result (a bad one is answered as malformed).
    this.scheduler.onResult(session, parseResultFrame(bytes), bytes.byteLength);
  }

  private onMalformed(session: WorkerSession, err: unknown): void {
    const e = toEdgepoolError(err, "E_PROTOCOL");
    const malformed = session.noteMalformed();
    // The first one at warn; a peer that goes on is refused after MAX_MALFORMED, logged again then.
    this.log[malformed === 1 ? "warn" : "debug"]({ worker: session.name, code: e.code, err: e.message }, "malformed message from worker");
    session.send(errorMessage(e.code, e.message));
    if (malformed >= MAX_MALFORMED) {
      this.refuse(session, new EdgepoolError("E_PROTOCOL", `${MAX_MALFORMED} malformed messages; disconnecting`));
    }
  }

  private refuse(session: WorkerSession, e: EdgepoolError): void {
    // Refused once: whatever else the peer sends while the close completes is ignored.
    if (!session.refuse()) return;
    this.log.warn({ worker: session.name, remote: session.remote, code: e.code, err: e.message }, "worker refused");
    session.send(errorMessage(e.code, e.message));
    session.link.close(wsCloseCodeFor(e.code), e.code);
    // Nothing more is read from a refused peer (it could otherwise push one more message of
    // up to the frame limit while the close completes); it is cut off in 2 s.
    session.link.pause();
    setTimeout(() => session.link.terminate(), 2000).unref();
  }
}
