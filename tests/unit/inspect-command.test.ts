import { writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { tempDir } from "../../harness/procs.js";
import { inspectCommand } from "../../bin/commands/models.js";
import { GraphBuilder } from "../../shared/onnx/builder.js";
import { catalogModel } from "../../shared/onnx/catalog.js";

/** Runs `fn` with stdout and stderr captured. */
async function capture(fn: () => Promise<number>): Promise<{ rc: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const o = vi.spyOn(process.stdout, "write").mockImplementation((chunk: string | Uint8Array) => {
    out += chunk.toString();
    return true;
  });
  const e = vi.spyOn(process.stderr, "write").mockImplementation((chunk: string | Uint8Array) => {
    err += chunk.toString();
    return true;
  });
  try {
    return { rc: await fn(), out, err };
  } finally {
    o.mockRestore();
    e.mockRestore();
  }
}

describe("edgepool inspect on a causal LM", () => {
  let tmp: { dir: string; remove: () => Promise<void> };
  let lmFile: string;

  beforeAll(async () => {
    tmp = await tempDir("inspect");
    lmFile = path.join(tmp.dir, "llm-tiny.onnx");
    await writeFile(lmFile, catalogModel("llm-tiny").build());
  });

  afterAll(async () => {
    await tmp.remove();
  });

  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("names the layout, the weights and the FLOPs per generated token", async () => {
    const { rc, out } = await capture(() => inspectCommand(lmFile, {}));
    expect(rc).toBe(0);
    expect(out).toContain("causal LM (decoder with past): 2 layers, 4 kv heads, head dim 16, vocab 256, KV cache float32, position_ids yes");
    expect(out).toContain("parameters 139,907; weight bytes 559,628");
    expect(out).toContain("FLOPs per generated token at context 128:");
  });

  it("--json gives the layout and counts a decode step's matmuls at the given context", async () => {
    const { rc, out } = await capture(() => inspectCommand(lmFile, { json: true, context: 64 }));
    expect(rc).toBe(0);
    const report = JSON.parse(out) as {
      causalLm: Record<string, unknown>;
      context: number;
      flopsPerToken: number;
      flopsByOp: Record<string, number>;
    };
    expect(report.causalLm).toEqual({
      kvCache: true,
      layers: 2,
      kvHeads: 4,
      headDim: 16,
      vocab: 256,
      hasPositionIds: true,
      kvDtype: "float32",
      parameters: 139907,
      weightBytes: 559628,
    });
    expect(report.context).toBe(64);
    // Weight matmuls: 2 FLOPs per weight (2 layers x (4 x 64x64 + 2 x 64x256), lm head 64x256);
    // attention: per layer, scores and weighted values, 2 x 4 heads x 64 keys x 16 dims, twice.
    const weightsFlops = 2 * (2 * (4 * 64 * 64 + 2 * 64 * 256) + 64 * 256);
    const attentionFlops = 2 * 2 * (2 * 4 * 64 * 16);
    expect(report.flopsByOp.MatMul).toBe(weightsFlops + attentionFlops);
    expect(report.flopsPerToken).toBeGreaterThan(weightsFlops + attentionFlops);
  });

  it("refuses a broken KV-cache layout, saying what is missing", async () => {
    const g = new GraphBuilder({ name: "broken" });
    g.input("input_ids", "int64", ["batch", "seq"]);
    g.input("attention_mask", "int64", ["batch", "total"]);
    g.input("past_key_values.0.value", "float32", ["batch", 2, "past", 4]);
    g.op("Gather", [g.floats("table", [10, 8], new Float32Array(80)), "input_ids"], {}, "logits");
    g.output("logits", "float32", ["batch", "seq", 8]);
    const file = path.join(tmp.dir, "broken.onnx");
    await writeFile(file, g.build());
    const { rc, err } = await capture(() => inspectCommand(file, {}));
    expect(rc).toBe(1);
    expect(err).toContain('"past_key_values.0.value" has no matching ".key"');
    expect(err).toContain("[E_MODEL_INVALID]");
  });

  it("refuses a context too short for a decode step", async () => {
    const { rc, err } = await capture(() => inspectCommand(lmFile, { context: 1 }));
    expect(rc).toBe(2);
    expect(err).toContain("--context must be an integer from 2");
  });
});
