/**
 * Loading onnxruntime-web inside the engine and choosing where it computes.
 *
 * The coordinator serves onnxruntime-web's own scripts and .wasm files (never a CDN); the
 * engine imports one of two builds from there at run time: `ort.webgpu.min.mjs` (WebGPU, with
 * WebAssembly for what WebGPU does not run) or `ort.wasm.min.mjs` (WebAssembly only, half the
 * download). Every 1.2x+ build is SIMD-only, so a browser without WebAssembly SIMD is refused
 * with a clear message. WebAssembly runs multi-threaded only when the page is cross-origin
 * isolated (SharedArrayBuffer); otherwise one thread.
 *
 * "auto" tries WebGPU where the browser exposes an adapter, and proves it by creating and
 * running a tiny probe model (y = x · I, served by the coordinator at /join/probe.onnx); any failure falls back to WebAssembly, and the reason is kept
 * in `notes` so the page and the hello say what is actually used.
 */
import type * as Ort from "onnxruntime-web";
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";
import type { Backend, EngineInfo, InitRequest } from "./engine-messages.js";

export type OrtModule = typeof Ort;

export interface LoadedOrt {
  ort: OrtModule;
  info: EngineInfo;
}

interface GpuLike {
  requestAdapter(): Promise<unknown>;
}

/** A minimal WebAssembly module that uses SIMD (i8x16.splat, i8x16.popcnt), as wasm-feature-detect does. */
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

/** True when this browser's WebAssembly has SIMD. */
export function hasWasmSimd(): boolean {
  try {
    return typeof WebAssembly === "object" && WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

/** Threads to use: what was asked, else ORT's own default for the cores there are. */
export function pickThreads(requested: number, isolated: boolean, cores: number): number {
  if (!isolated) return 1;
  if (requested > 0) return requested;
  return Math.max(1, Math.min(4, Math.ceil(cores / 2)));
}

/** Creates and runs the probe on `backend`; throws when that backend cannot compute. */
async function probe(ort: OrtModule, backend: Backend, model: Uint8Array): Promise<void> {
  const session = await ort.InferenceSession.create(model, { executionProviders: [backend] });
  try {
    const x = new ort.Tensor("float32", new Float32Array([1, 2, 3, 4]), [1, 4]);
    const out = (await session.run({ x })).y;
    const data = out?.data;
    if (!(data instanceof Float32Array) || data[0] !== 1 || data[3] !== 4) throw new EdgepoolError("E_INFERENCE", `the ${backend} probe model computed a wrong answer`);
  } finally {
    await session.release();
  }
}

async function fetchProbe(url: string): Promise<Uint8Array> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(30_000) });
    if (!res.ok) throw new EdgepoolError("E_MODEL_LOAD", `GET ${url} answered HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  } catch (err) {
    throw new EdgepoolError("E_MODEL_LOAD", `cannot fetch the probe model: ${toEdgepoolError(err).message}`, { cause: err });
  }
}

async function importOrt(base: string, build: "wasm" | "webgpu"): Promise<OrtModule> {
  const url = `${base}ort.${build}.min.mjs`;
  try {
    return (await import(/* @vite-ignore */ url)) as OrtModule;
  } catch (err) {
    throw new EdgepoolError("E_MODEL_LOAD", `cannot load onnxruntime-web from ${url}: ${toEdgepoolError(err).message}`, { cause: err });
  }
}

function configure(ort: OrtModule, base: string, threads: number): void {
  ort.env.wasm.wasmPaths = base;
  ort.env.wasm.numThreads = threads;
  // Already off the page's main thread: ORT's own proxy worker would only add a hop.
  ort.env.wasm.proxy = false;
  ort.env.logLevel = "error";
}

/** Loads onnxruntime-web and settles on a backend that provably computes. */
export async function loadOrt(req: InitRequest): Promise<LoadedOrt> {
  const notes: string[] = [];
  const model = await fetchProbe(req.probeUrl);
  if (!hasWasmSimd()) {
    throw new EdgepoolError("E_UNAVAILABLE", "this browser's WebAssembly has no SIMD, which onnxruntime-web needs; update the browser (Chrome 91+, Safari 16.4+, Firefox 89+)");
  }
  const isolated = globalThis.crossOriginIsolated === true;
  const cores = navigator.hardwareConcurrency || 1;
  const threads = pickThreads(req.threads, isolated, cores);
  if (!isolated) {
    notes.push(
      globalThis.isSecureContext
        ? "not cross-origin isolated: WebAssembly runs on one thread"
        : "plain http from another machine is not a secure context: one WebAssembly thread and no WebGPU (serve the coordinator over https to lift this)",
    );
  }
  if (req.backend !== "wasm") {
    const gpu = (navigator as Navigator & { gpu?: GpuLike }).gpu;
    let reason: string | null = null;
    if (!gpu) reason = "this browser exposes no WebGPU";
    else {
      try {
        const adapter = await gpu.requestAdapter();
        if (!adapter) reason = "WebGPU has no adapter here (no GPU, or it is disabled)";
      } catch (err) {
        reason = `WebGPU adapter request failed: ${toEdgepoolError(err).message}`;
      }
    }
    if (reason === null) {
      const ort = await importOrt(req.ortBase, "webgpu");
      configure(ort, req.ortBase, threads);
      try {
        await probe(ort, "webgpu", model);
        return { ort, info: info("webgpu", threads, isolated, ort, notes) };
      } catch (err) {
        reason = `WebGPU failed its probe: ${toEdgepoolError(err).message}`;
      }
    }
    if (req.backend === "webgpu") throw new EdgepoolError("E_UNAVAILABLE", `WebGPU was asked for but ${reason}`);
    notes.push(`${reason}; using WebAssembly`);
  }
  const ort = await importOrt(req.ortBase, "wasm");
  configure(ort, req.ortBase, threads);
  try {
    await probe(ort, "wasm", model);
  } catch (err) {
    throw new EdgepoolError("E_MODEL_LOAD", `onnxruntime-web cannot run WebAssembly here: ${toEdgepoolError(err).message}`, { cause: err });
  }
  return { ort, info: info("wasm", threads, isolated, ort, notes) };
}

function info(backend: Backend, threads: number, isolated: boolean, ort: OrtModule, notes: string[]): EngineInfo {
  // ORT may lower the thread count itself (it does without SharedArrayBuffer).
  const used = backend === "wasm" ? Math.max(1, ort.env.wasm.numThreads ?? threads) : threads;
  return { backend, threads: used, simd: true, crossOriginIsolated: isolated, ortVersion: ort.env.versions.web ?? "unknown", notes };
}
