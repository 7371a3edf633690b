/**
 * The WebSocket side of the coordinator: accepts worker connections, holds each to a hello
 * within a deadline, refuses protocol mismatches with a message naming both versions, and
 * routes text and binary messages to the scheduler. Malformed input is answered with a
 * typed `error` message and never throws out of a handler; a peer that keeps sending
 * garbage is disconnected.
 */
import { randomUUID } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { Logger } from "pino";
import type { RawData, WebSocket } from "ws";
import { EdgepoolError, toEdgepoolError, wsCloseCodeFor } from "../shared/errors.js";
import { PROTOCOL_VERSION, checkProtocolVersion, parseWorkerText } from "../shared/protocol.js";
import type { Scheduler } from "./scheduler.js";
import { WorkerSession } from "./worker-session.js";

const MAX_MALFORMED = 10;

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

export class WorkerGateway {
  constructor(
    private readonly log: Logger,
    private readonly scheduler: Scheduler,
    private readonly opts: { prefetch: number; helloTimeoutMs: number },
  ) {}

  accept(socket: WebSocket, req: IncomingMessage): void {
    const remote = `${req.socket.remoteAddress ?? "?"}:${req.socket.remotePort ?? 0}`;
    const session = new WorkerSession(randomUUID(), socket, remote, this.opts.prefetch);
    const helloTimer = setTimeout(() => {
      this.refuse(session, new EdgepoolError("E_TIMEOUT", `no hello within ${this.opts.helloTimeoutMs} ms`));
    }, this.opts.helloTimeoutMs);
    helloTimer.unref();

    socket.on("message", (data, isBinary) => {
      session.lastSeen = Date.now();
      try {
        if (isBinary) this.onBinary(session, toBytes(data));
        else this.onText(session, toBytes(data).toString(), helloTimer);
      } catch (err) {
        this.onMalformed(session, err);
      }
    });
    socket.on("pong", () => {
      session.lastSeen = Date.now();
    });
    socket.on("error", (err) => this.log.warn({ worker: session.name, err: err.message }, "worker socket error"));
    socket.on("close", (code) => {
      clearTimeout(helloTimer);
      const wasReady = session.state === "ready" || session.state === "draining";
      session.state = "closed";
      if (wasReady) {
        this.log.info({ worker: session.name, workerId: session.hello?.workerId, code, requeued: session.inflight.size }, "worker left");
      }
      this.scheduler.removeWorker(session);
    });
  }

  private onText(session: WorkerSession, text: string, helloTimer: NodeJS.Timeout): void {
    const msg = parseWorkerText(text);
    if (msg.type === "hello") {
      if (session.state !== "handshake") throw new EdgepoolError("E_PROTOCOL", "hello sent twice on one connection");
      clearTimeout(helloTimer);
      try {
        checkProtocolVersion(msg.protocol, `worker ${msg.name}`);
      } catch (err) {
        this.refuse(session, toEdgepoolError(err));
        return;
      }
      session.hello = msg;
      session.state = "ready";
      session.send(JSON.stringify({ type: "welcome", protocol: PROTOCOL_VERSION, workerId: msg.workerId, modelPath: "/models" }));
      this.log.info(
        { worker: msg.name, workerId: msg.workerId, platform: msg.platform, cpus: msg.cpus, threads: msg.threads, slots: msg.slots, remote: session.remote },
        "worker joined",
      );
      this.scheduler.addWorker(session);
      return;
    }
    if (session.state === "handshake" || session.state === "closed") throw new EdgepoolError("E_PROTOCOL", "say hello before anything else");
    if (msg.type === "draining") this.scheduler.onDraining(session, msg);
    else this.scheduler.onShardError(session, msg);
  }

  private onBinary(session: WorkerSession, bytes: Uint8Array): void {
    if (session.state !== "ready" && session.state !== "draining") throw new EdgepoolError("E_PROTOCOL", "say hello before sending results");
    this.scheduler.onResult(session, bytes);
  }

  private onMalformed(session: WorkerSession, err: unknown): void {
    const e = toEdgepoolError(err, "E_PROTOCOL");
    session.malformed += 1;
    this.log.warn({ worker: session.name, code: e.code, err: e.message }, "malformed message from worker");
    session.send(JSON.stringify({ type: "error", code: e.code, message: e.message }));
    if (session.malformed >= MAX_MALFORMED) {
      this.refuse(session, new EdgepoolError("E_PROTOCOL", `${MAX_MALFORMED} malformed messages; disconnecting`));
    }
  }

  private refuse(session: WorkerSession, e: EdgepoolError): void {
    this.log.warn({ worker: session.name, remote: session.remote, code: e.code, err: e.message }, "worker refused");
    session.send(JSON.stringify({ type: "error", code: e.code, message: e.message }));
    session.socket.close(wsCloseCodeFor(e.code), e.code);
    // A peer that never completes the close handshake is cut off.
    setTimeout(() => session.socket.terminate(), 2000).unref();
  }
}
