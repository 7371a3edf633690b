/**
 * The page's handle on its compute engine (engine.ts in a module Web Worker): requests with
 * ids, replies parsed with zod. If the engine dies (its script fails to load, it runs out of
 * memory), every pending request is rejected at once and later ones fail at once: nothing
 * waits forever on a dead worker.
 */
import { EdgepoolError, isErrorCode } from "../../shared/errors.js";
import { EngineReplySchema, type EngineInfo, type InitRequest } from "./engine-messages.js";

export interface EngineResult {
  frame: ArrayBuffer;
  rows: number;
  computeMs: number;
}

interface Pending {
  resolve: (value: unknown) => void;
  reject: (err: EdgepoolError) => void;
}

export interface ModelLoaded {
  sha256: string;
  bytes: number;
  ms: number;
  fixedBatch: boolean;
}

export class EngineClient {
  private readonly worker: Worker;
  private readonly pending = new Map<number, Pending>();
  private seq = 0;
  private dead: EdgepoolError | null = null;

  constructor(
    scriptUrl: string | URL,
    private readonly onModel: (m: ModelLoaded) => void = () => undefined,
  ) {
    this.worker = new Worker(scriptUrl, { type: "module", name: "edgepool-engine" });
    this.worker.addEventListener("message", (e: MessageEvent<unknown>) => this.onReply(e.data));
    this.worker.addEventListener("error", (e: ErrorEvent) => {
      e.preventDefault();
      this.die(new EdgepoolError("E_INTERNAL", `the compute engine stopped: ${e.message || "its script failed to load"}`));
    });
    this.worker.addEventListener("messageerror", () => this.die(new EdgepoolError("E_INTERNAL", "the compute engine sent a message that cannot be read")));
  }

  /** Loads onnxruntime-web in the engine and settles on a backend. */
  init(req: Omit<InitRequest, "type" | "id">): Promise<EngineInfo> {
    return this.request<EngineInfo>({ type: "init", ...req }, []);
  }

  /** Runs one shard frame; the frame's buffer is handed to the engine (no copy). */
  run(frame: ArrayBuffer, modelBase: string): Promise<EngineResult> {
    return this.request<EngineResult>({ type: "run", frame, modelBase }, [frame]);
  }

  /** Stops the engine; pending requests are rejected. Safe to call twice. */
  terminate(): void {
    this.worker.terminate();
    this.die(new EdgepoolError("E_CANCELLED", "the compute engine was stopped"));
  }

  private request<T>(msg: Record<string, unknown>, transfer: Transferable[]): Promise<T> {
    if (this.dead) return Promise.reject(this.dead);
    const id = ++this.seq;
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.worker.postMessage({ ...msg, id }, transfer);
    });
  }

  private onReply(data: unknown): void {
    const r = EngineReplySchema.safeParse(data);
    if (!r.success) {
      this.die(new EdgepoolError("E_INTERNAL", `the compute engine sent a malformed reply: ${r.error.issues[0]?.message ?? "invalid"}`));
      return;
    }
    const msg = r.data;
    if (msg.type === "model") {
      this.onModel(msg);
      return;
    }
    const p = this.pending.get(msg.id);
    if (!p) return;
    this.pending.delete(msg.id);
    if (msg.type === "ready") p.resolve(msg.info);
    else if (msg.type === "done") p.resolve({ frame: msg.frame, rows: msg.rows, computeMs: msg.computeMs });
    else p.reject(new EdgepoolError(isErrorCode(msg.code) ? msg.code : "E_INTERNAL", msg.message));
  }

  private die(err: EdgepoolError): void {
    this.dead ??= err;
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
  }
}
