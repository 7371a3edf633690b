import { describe, expect, it } from "vitest";
import { decodeFrame, planFrame } from "../../shared/protocol/frame.js";
import * as encode from "../../shared/protocol/encode.js";
import {
  MAX_MESSAGE_CHARS,
  MAX_REASON_CHARS,
  PROTOCOL_VERSION,
  ResultHeaderSchema,
  ShardHeaderSchema,
  parseCoordinatorText,
  parseResultFrame,
  parseShardFrame,
  parseWorkerText,
} from "../../shared/protocol/messages.js";

const hello = {
  workerId: "w-1",
  name: "box",
  platform: "linux",
  arch: "x64",
  cpus: 4,
  memoryBytes: 8e9,
  runtime: { name: "onnxruntime-node", version: "1.30.0" },
  threads: 2,
  slots: 1,
};

describe("every outgoing message parses with the receiving side's schema", () => {
  it("worker -> coordinator text: hello, shard_error, draining", () => {
    const h = parseWorkerText(encode.helloMessage(hello));
    expect(h).toMatchObject({ type: "hello", protocol: PROTOCOL_VERSION, workerId: "w-1", maxCpu: 100, virtual: false });
    const e = parseWorkerText(encode.shardErrorMessage("s.1.1", "j", "E_SHAPE", "x".repeat(10_000)));
    expect(e.type).toBe("shard_error");
    if (e.type === "shard_error") {
      expect(e.message.length).toBe(MAX_MESSAGE_CHARS);
      expect(e.code).toBe("E_SHAPE");
    }
    expect(parseWorkerText(encode.drainingMessage(["a", "b"]))).toEqual({ type: "draining", released: ["a", "b"] });
  });

  it("a hello the coordinator would refuse fails where it is built, naming the field", () => {
    expect(() => encode.helloMessage({ ...hello, slots: 0 })).toThrow(/slots/);
  });

  it("coordinator -> worker text: welcome, cancel, error", () => {
    expect(parseCoordinatorText(encode.welcomeMessage("w-1", "/models"))).toEqual({ type: "welcome", protocol: PROTOCOL_VERSION, workerId: "w-1", modelPath: "/models" });
    const c = parseCoordinatorText(encode.cancelMessage("s.1.1", "r".repeat(1000)));
    expect(c.type === "cancel" && c.reason.length).toBe(MAX_REASON_CHARS);
    const err = parseCoordinatorText(encode.errorMessage("E_PROTOCOL", "m".repeat(5000)));
    expect(err.type === "error" && err.message.length).toBe(MAX_MESSAGE_CHARS);
  });

  it("frame headers: shard (to a worker) and result (to the coordinator)", () => {
    const sha = "a".repeat(64);
    const shard = planFrame(encode.shardHeader("j.0.1", "j", sha, 4, 8), [{ name: "x", dtype: "float32", dims: [4, 3] }]).frame;
    const ps = parseShardFrame(shard);
    expect(ps.header).toEqual(ShardHeaderSchema.parse({ type: "shard", shardId: "j.0.1", jobId: "j", model: sha, start: 4, end: 8 }));
    expect(ps.tensors[0]!.dims).toEqual([4, 3]);
    const result = planFrame(encode.resultHeader("j.0.1", "j", 1.5, 0.5), [{ name: "y", dtype: "float32", dims: [4, 2] }]).frame;
    const pr = parseResultFrame(result);
    expect(pr.header).toEqual(ResultHeaderSchema.parse({ type: "result", shardId: "j.0.1", jobId: "j", computeMs: 1.5, throttleMs: 0.5 }));
    expect(decodeFrame(result).tensors[0]!.name).toBe("y");
  });
});
