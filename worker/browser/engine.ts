/**
 * The join page's compute engine, a module Web Worker: ONNX Runtime runs here so the page
 * stays responsive while a shard computes. It answers `init` once (loads onnxruntime-web
 * and settles on a backend, see ort-web.ts), then `run` requests one at a time: decode the
 * shard frame (shared/protocol/messages.ts), load its model by hash (verified), compute, and hand back
 * the `result` frame, or a `failed` reply with an error code. It never throws to the page.
 */
import "./zod-csp.js";
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import { parseShardFrame } from "../../shared/protocol/messages.js";
import { EngineRequestSchema, type EngineInfo, type EngineReply, type InitRequest, type RunRequest } from "./engine-messages.js";
import { fetchModel } from "./model-fetch.js";
import { loadOrt } from "./ort-web.js";
import { WebRunner } from "./web-runner.js";

const MODEL_DOWNLOAD_TIMEOUT_MS = 120_000;
/** ONNX protobufs cannot exceed 2 GiB; a phone will run out of memory long before. */
const MAX_MODEL_BYTES = 2 ** 31 - 1;

interface WorkerScope {
  addEventListener(type: "message", listener: (e: MessageEvent<unknown>) => void): void;
  postMessage(message: unknown, options?: { transfer?: Transferable[] }): void;
}
const scope = globalThis as unknown as WorkerScope;

let runner: WebRunner | null = null;
let token: string | null = null;
let loaded: Promise<EngineInfo> | null = null;
/** Shards run one after another: an onnxruntime-web session is not re-entrant. */
let queue: Promise<void> = Promise.resolve();

function reply(msg: EngineReply, transfer: Transferable[] = []): void {
  scope.postMessage(msg, { transfer });
}

function failed(id: number, err: unknown): void {
  const e = toEdgepoolError(err, "E_INTERNAL");
  reply({ type: "failed", id, code: e.code, message: e.message.slice(0, 4096) });
}

async function load(req: InitRequest): Promise<EngineInfo> {
  token = req.token;
  const { ort, info } = await loadOrt(req);
  runner = new WebRunner(ort, info.backend, {
    maxSessions: 2,
    onLoaded: (m) => reply({ type: "model", ...m }),
  });
  return info;
}

async function run(req: RunRequest): Promise<void> {
  if (!runner) throw new EdgepoolError("E_STATE", "the engine got a shard before it was initialised");
  const { header, tensors } = parseShardFrame(new Uint8Array(req.frame));
  await runner.load(header.model, () => fetchModel(req.modelBase, header.model, { timeoutMs: MODEL_DOWNLOAD_TIMEOUT_MS, maxBytes: MAX_MODEL_BYTES, token }));
  const out = await runner.run(header, tensors);
  // planFrame allocates the frame alone in its buffer, so the whole buffer can be handed over.
  const buffer = out.frame.buffer as ArrayBuffer;
  reply({ type: "done", id: req.id, frame: buffer, rows: out.rows, computeMs: out.computeMs }, [buffer]);
}

scope.addEventListener("message", (e) => {
  const parsed = EngineRequestSchema.safeParse(e.data);
  if (!parsed.success) {
    const id = typeof e.data === "object" && e.data !== null && "id" in e.data && typeof e.data.id === "number" ? e.data.id : -1;
    if (id >= 0) failed(id, new EdgepoolError("E_PROTOCOL", `engine request is malformed: ${parsed.error.issues[0]?.message ?? "invalid"}`));
    return;
  }
  const req = parsed.data;
  if (req.type === "init") {
    loaded ??= load(req);
    loaded.then(
      (info) => reply({ type: "ready", id: req.id, info }),
      (err: unknown) => {
        loaded = null;
        failed(req.id, err);
      },
    );
    return;
  }
  queue = queue.then(() => run(req).catch((err: unknown) => failed(req.id, err)));
});
