/**
 * The worker protocol session (worker/core) driven by a fake Transport and a fake Executor:
 * no sockets, no ONNX Runtime. Each test feeds coordinator messages as the wire would carry
 * them (made by the shared builders) and asserts what the session sent back.
 */
import { afterEach, describe, expect, it } from "vitest";
import { EdgepoolError } from "../../shared/errors.js";
import { cancelMessage, errorMessage, helloMessage, shardHeader, welcomeMessage } from "../../shared/protocol/encode.js";
import { encodeFrame } from "../../shared/protocol/frame.js";
import { PROTOCOL_VERSION, parseWorkerText, type WorkerTextMessage } from "../../shared/protocol/messages.js";
import type { Executor, ShardAnswers } from "../../worker/core/executor.js";
import { dispatchCoordinatorText, welcomeRefusal } from "../../worker/core/protocol.js";
import type { SessionHooks } from "../../worker/core/hooks.js";
import { WorkerSession } from "../../worker/core/session.js";
import type { HeldShard } from "../../worker/core/shard.js";
import { assertTransition, canTransition, type SessionState } from "../../worker/core/state.js";
import type { Transport } from "../../worker/core/transport.js";

const SHA = "a".repeat(64);
const HELLO = helloMessage({
  workerId: "w-1",
  name: "unit",
  platform: "test",
  cpus: 1,
  memoryBytes: 0,
  runtime: { name: "fake", version: "0" },
  threads: 1,
  slots: 1,
});

class FakeTransport implements Transport {
  isOpen = true;
  readonly texts: WorkerTextMessage[] = [];
  readonly frames: Uint8Array[] = [];
  readonly closes: { code: number; reason: string }[] = [];
  private onClose: (() => void) | null = null;

  sendText(text: string): boolean {
    if (!this.isOpen) return false;
    // Parsed with the coordinator's own parser: whatever the session sends must be valid.
    this.texts.push(parseWorkerText(text));
    return true;
  }

  sendBinary(frame: Uint8Array): boolean {
    if (!this.isOpen) return false;
    this.frames.push(frame);
    return true;
  }

  close(code: number, reason: string): void {
    this.closes.push({ code, reason });
    this.onClose?.();
  }

  /** Resolves at the next close(); rejects after `ms` so a broken timer fails the test. */
  closed(ms = 5000): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the session never closed the transport")), ms);
      this.onClose = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  types(): string[] {
    return this.texts.map((t) => t.type);
  }
}

/** Runs up to `slots` batches at once; the test answers them through `answers`. */
class FakeExecutor implements Executor {
  slots = 1;
  batches: (readonly HeldShard[])[] = [];
  answers: ShardAnswers | null = null;
  batchWith = 0;
  throwOnRun = false;

  canRun(): boolean {
    return this.running() < this.slots;
  }

  companions(_first: HeldShard, queued: readonly HeldShard[]): number {
    return Math.min(this.batchWith, queued.length);
  }

  run(batch: readonly HeldShard[], answers: ShardAnswers): void {
    if (this.throwOnRun) throw new Error("executor broke");
    this.batches.push(batch);
    this.answers = answers;
  }

  /** Batches with a shard not yet answered. */
  running(): number {
    return this.batches.filter((b) => b.some((s) => s.phase === "running")).length;
  }

  shard(shardId: string): HeldShard {
    for (const b of this.batches) for (const s of b) if (s.header.shardId === shardId) return s;
    throw new Error(`no shard ${shardId} was run`);
  }

  ids(): string[][] {
    return this.batches.map((b) => b.map((s) => s.header.shardId));
  }
}

interface Recorded {
  malformed: { kind: string; code: string; message: string }[];
  fatal: EdgepoolError[];
  discarded: { shardId: string; reason: string }[];
  failed: { shardId: string; code: string }[];
  states: string[];
  coordinatorErrors: string[];
  ready: number;
}

const sessions: WorkerSession[] = [];
afterEach(() => {
  // Clears hello timers left by a test.
  for (const s of sessions.splice(0)) s.close();
});

function setup(opts: { helloTimeoutMs?: number; maxQueued?: number } = {}) {
  const transport = new FakeTransport();
  const executor = new FakeExecutor();
  const rec: Recorded = { malformed: [], fatal: [], discarded: [], failed: [], states: [], coordinatorErrors: [], ready: 0 };
  const hooks: SessionHooks = {
    state: (from, to) => rec.states.push(`${from}>${to}`),
    ready: () => (rec.ready += 1),
    malformed: (kind, e) => rec.malformed.push({ kind, code: e.code, message: e.message }),
    coordinatorError: (m) => rec.coordinatorErrors.push(m.code),
    fatal: (e) => rec.fatal.push(e),
    discarded: (s, reason) => rec.discarded.push({ shardId: s.header.shardId, reason }),
    failed: (h, e) => rec.failed.push({ shardId: h.shardId, code: e.code }),
  };
  const session = new WorkerSession(transport, executor, hooks, {
    helloTimeoutMs: opts.helloTimeoutMs ?? 60_000,
    modelBase: (p) => {
      if (p.includes("bad")) throw new EdgepoolError("E_CONFIG", `cannot use model path ${p}`);
      return `http://coordinator${p}`;
    },
    ...(opts.maxQueued !== undefined ? { maxQueued: opts.maxQueued } : {}),
  });
  sessions.push(session);
  return { session, transport, executor, rec };
}

/** A session that said hello and got its welcome. */
function readySession(opts: { helloTimeoutMs?: number; maxQueued?: number } = {}) {
  const t = setup(opts);
  t.session.start(HELLO);
  expect(t.session.opened()).toBe(true);
  t.session.text(welcomeMessage("w-1", "/models"));
  expect(t.session.state).toBe("ready");
  return t;
}

function shard(shardId: string, rows = 2): Uint8Array {
  return encodeFrame(shardHeader(shardId, "job-1", SHA, 0, rows), [{ name: "x", dtype: "float32", dims: [rows, 3], data: new Float32Array(rows * 3) }]);
}

const RESULT = new Uint8Array([1, 2, 3]);

describe("worker session: hello and welcome", () => {
  it("sends hello on a new connection and accepts a welcome only after it, once", () => {
    const { session, transport, rec } = setup();
    session.start(HELLO);
    // Before any connection opened: no hello went out, so a welcome is unexpected.
    session.text(welcomeMessage("w-1", "/models"));
    expect(session.state).toBe("connecting");
    expect(rec.malformed).toEqual([{ kind: "text", code: "E_PROTOCOL", message: "unexpected welcome while connecting" }]);

    expect(session.opened()).toBe(true);
    expect(transport.texts).toEqual([JSON.parse(HELLO)]);
    session.text(welcomeMessage("w-1", "/models"));
    expect(session.state).toBe("ready");
    expect(rec.ready).toBe(1);
    expect(rec.states).toEqual(["idle>connecting", "connecting>ready"]);

    session.text(welcomeMessage("w-1", "/models"));
    expect(session.state).toBe("ready");
    expect(rec.ready).toBe(1);
    expect(rec.malformed.map((m) => m.message)).toEqual(["unexpected welcome while connecting", "unexpected welcome while ready"]);
    // Only the hello went out: a refused welcome earns no answer.
    expect(transport.types()).toEqual(["hello"]);
  });

  it("refuses a welcome before start and a connection that opens when not connecting", () => {
    const { session, transport, rec } = setup();
    expect(session.opened()).toBe(false);
    session.text(welcomeMessage("w-1", "/models"));
    expect(session.state).toBe("idle");
    expect(rec.malformed).toHaveLength(1);
    expect(transport.texts).toEqual([]);
  });

  it("closes a connection whose welcome does not come in time, then refuses the late welcome", async () => {
    const { session, transport, rec } = setup({ helloTimeoutMs: 20 });
    session.start(HELLO);
    const closed = transport.closed();
    session.opened();
    await closed;
    expect(transport.closes).toEqual([{ code: 4000, reason: "no welcome within 20 ms" }]);
    session.text(welcomeMessage("w-1", "/models"));
    expect(session.state).toBe("connecting");
    expect(rec.malformed.map((m) => m.message)).toEqual(["unexpected welcome while connecting"]);
  });

  it("ignores a welcome whose model path cannot be used, and accepts the next good one", () => {
    const { session, rec } = setup();
    session.start(HELLO);
    session.opened();
    session.text(welcomeMessage("w-1", "/bad"));
    expect(session.state).toBe("connecting");
    expect(rec.malformed).toEqual([{ kind: "text", code: "E_CONFIG", message: "cannot use model path /bad" }]);
    session.text(welcomeMessage("w-1", "/models"));
    expect(session.state).toBe("ready");
  });

  it("treats a welcome in another protocol version as fatal, once, and accepts no welcome after it", () => {
    const { session, rec, transport } = setup();
    session.start(HELLO);
    session.opened();
    session.text(JSON.stringify({ type: "welcome", protocol: PROTOCOL_VERSION + 1, workerId: "w-1", modelPath: "/models" }));
    expect(rec.fatal).toHaveLength(1);
    expect(rec.fatal[0]!.code).toBe("E_VERSION");
    expect(rec.fatal[0]!.message).toContain(`protocol version ${PROTOCOL_VERSION + 1}`);
    expect(session.fatal?.code).toBe("E_VERSION");
    expect(session.state).toBe("connecting");
    session.text(welcomeMessage("w-1", "/models"));
    expect(session.state).toBe("connecting");
    expect(rec.fatal).toHaveLength(1);
    expect(transport.types()).toEqual(["hello"]);
  });

  it("treats an error with code E_VERSION as fatal, and other errors as news", () => {
    const { session, rec } = readySession();
    session.text(errorMessage("E_RATE_LIMIT", "slow down"));
    expect(rec.coordinatorErrors).toEqual(["E_RATE_LIMIT"]);
    expect(rec.fatal).toEqual([]);
    session.text(errorMessage("E_VERSION", "worker speaks protocol version 1 but this side speaks 2"));
    expect(rec.coordinatorErrors).toEqual(["E_RATE_LIMIT", "E_VERSION"]);
    expect(rec.fatal.map((e) => [e.code, e.message])).toEqual([["E_VERSION", "worker speaks protocol version 1 but this side speaks 2"]]);
    session.text(errorMessage("E_VERSION", "again"));
    expect(rec.fatal).toHaveLength(1);
  });
});

describe("worker session: shards", () => {
  it("runs a shard and sends its result once; later answers for it send nothing", () => {
    const { session, transport, executor } = readySession();
    session.binary(shard("s1", 4));
    expect(executor.ids()).toEqual([["s1"]]);
    const s1 = executor.shard("s1");
    expect(s1).toMatchObject({ rows: 4, epoch: 0, modelBase: "http://coordinator/models", phase: "running" });
    expect(s1.tensors.map((t) => t.dims)).toEqual([[4, 3]]);
    expect(session.running).toBe(1);
    expect(executor.answers!.result(s1, RESULT)).toBe(true);
    expect(session.running).toBe(0);
    expect(s1.phase).toBe("answered");
    // The input frame is let go once answered.
    expect(s1.tensors).toEqual([]);
    expect(executor.answers!.result(s1, RESULT)).toBe(false);
    expect(executor.answers!.error(s1, new EdgepoolError("E_INFERENCE", "late"))).toBe(false);
    expect(transport.frames).toEqual([RESULT]);
    expect(transport.types()).toEqual(["hello"]);
  });

  it("answers a failure with one shard_error and nothing after it", () => {
    const { session, transport, executor, rec } = readySession();
    session.binary(shard("s1"));
    const s1 = executor.shard("s1");
    expect(executor.answers!.error(s1, new EdgepoolError("E_SHAPE", "wrong dims"))).toBe(true);
    expect(executor.answers!.result(s1, RESULT)).toBe(false);
    expect(transport.frames).toEqual([]);
    expect(transport.texts.slice(1)).toEqual([{ type: "shard_error", shardId: "s1", jobId: "job-1", code: "E_SHAPE", message: "wrong dims" }]);
    expect(rec.failed).toEqual([{ shardId: "s1", code: "E_SHAPE" }]);
  });

  it("gives every shard of a batch one answer even when the executor throws", () => {
    const { session, transport, executor } = readySession();
    executor.throwOnRun = true;
    session.binary(shard("s1"));
    expect(transport.texts.slice(1)).toEqual([{ type: "shard_error", shardId: "s1", jobId: "job-1", code: "E_INTERNAL", message: "executor broke" }]);
    expect(session.running).toBe(0);
  });

  it("queues shards while the executor is busy, and hands them over in order, batched as it asks", () => {
    const { session, executor } = readySession();
    executor.batchWith = 2;
    session.binary(shard("a"));
    session.binary(shard("b"));
    session.binary(shard("c"));
    session.binary(shard("d"));
    expect(executor.ids()).toEqual([["a"]]);
    expect(session.queued).toBe(3);
    executor.answers!.result(executor.shard("a"), RESULT);
    executor.answers!.pump();
    expect(executor.ids()).toEqual([["a"], ["b", "c", "d"]]);
    expect(session.queued).toBe(0);
    expect(session.running).toBe(3);
  });

  it("refuses a shard id it already holds, queued or running, and takes it again once answered", () => {
    const { session, transport, executor, rec } = readySession();
    session.binary(shard("a"));
    session.binary(shard("b"));
    session.binary(shard("a"));
    session.binary(shard("b"));
    expect(rec.malformed.map((m) => [m.kind, m.code, m.message])).toEqual([
      ["binary", "E_PROTOCOL", "shard a is already held by this worker"],
      ["binary", "E_PROTOCOL", "shard b is already held by this worker"],
    ]);
    expect(session.queued).toBe(1);
    expect(session.running).toBe(1);
    executor.answers!.result(executor.shard("a"), RESULT);
    executor.answers!.pump();
    session.binary(shard("a"));
    expect(rec.malformed).toHaveLength(2);
    expect(session.queued).toBe(1);
    expect(transport.types()).toEqual(["hello"]);
  });

  it("refuses a shard over the queue cap with E_UNAVAILABLE", () => {
    const { session, transport, executor } = readySession({ maxQueued: 2 });
    executor.slots = 0;
    session.binary(shard("a"));
    session.binary(shard("b"));
    session.binary(shard("c"));
    expect(session.queued).toBe(2);
    expect(transport.texts.slice(1)).toEqual([
      { type: "shard_error", shardId: "c", jobId: "job-1", code: "E_UNAVAILABLE", message: "worker queue is full (2 shards); send fewer at once" },
    ]);
  });

  it("drops a cancelled queued shard without running or answering it", () => {
    const { session, transport, executor, rec } = readySession();
    executor.slots = 0;
    session.binary(shard("a"));
    session.binary(shard("b"));
    session.text(cancelMessage("b", "job cancelled"));
    expect(session.queued).toBe(1);
    expect(rec.discarded).toEqual([{ shardId: "b", reason: "cancelled: job cancelled" }]);
    executor.slots = 1;
    session.pump();
    expect(executor.ids()).toEqual([["a"]]);
    executor.answers!.result(executor.shard("a"), RESULT);
    expect(transport.frames).toHaveLength(1);
    expect(transport.types()).toEqual(["hello"]);
    // A cancel for a shard it does not hold changes nothing.
    session.text(cancelMessage("zzz", "whatever"));
    expect(rec.discarded).toHaveLength(1);
  });

  it("discards the answer of a running shard that was cancelled", () => {
    const { session, transport, executor, rec } = readySession();
    session.binary(shard("a"));
    session.text(cancelMessage("a", "retried elsewhere"));
    const a = executor.shard("a");
    expect(a).toMatchObject({ phase: "running", cancelled: true });
    expect(executor.answers!.dropIfStale(a)).toBe(true);
    expect(executor.answers!.result(a, RESULT)).toBe(false);
    expect(transport.frames).toEqual([]);
    expect(rec.discarded).toEqual([{ shardId: "a", reason: "cancelled" }]);
    expect(session.running).toBe(0);

    session.binary(shard("b"));
    session.text(cancelMessage("b", "retried elsewhere"));
    expect(executor.answers!.error(executor.shard("b"), new EdgepoolError("E_INFERENCE", "boom"))).toBe(false);
    expect(transport.types()).toEqual(["hello"]);
  });

  it("discards an answer computed for a connection that has since dropped, and drops the queue with it", () => {
    const { session, transport, executor, rec } = readySession();
    session.binary(shard("old"));
    session.binary(shard("queued"));
    expect(session.lost()).toBe(1);
    expect(session.state).toBe("connecting");
    expect(session.epoch).toBe(1);
    expect(session.queued).toBe(0);
    // A new connection and welcome before the old shard finishes.
    session.opened();
    session.text(welcomeMessage("w-1", "/models"));
    const old = executor.shard("old");
    expect(old.epoch).toBe(0);
    expect(executor.answers!.result(old, RESULT)).toBe(false);
    expect(rec.discarded).toEqual([{ shardId: "old", reason: "connection lost" }]);
    expect(transport.frames).toEqual([]);
    // The new connection's shards are answered as usual.
    session.binary(shard("new"));
    expect(executor.answers!.result(executor.shard("new"), RESULT)).toBe(true);
    expect(transport.frames).toEqual([RESULT]);
    expect(transport.types()).toEqual(["hello", "hello"]);
  });

  it("drops a result that cannot be sent as 'connection closed'", () => {
    const { session, transport, executor, rec } = readySession();
    session.binary(shard("a"));
    transport.isOpen = false;
    expect(executor.answers!.result(executor.shard("a"), RESULT)).toBe(false);
    expect(rec.discarded).toEqual([{ shardId: "a", reason: "connection closed" }]);
    expect(session.running).toBe(0);
  });
});

describe("worker session: draining", () => {
  it("names exactly the queued shards in one draining message, sends nothing for them, and still reports the running one", () => {
    const { session, transport, executor, rec } = readySession();
    session.binary(shard("run"));
    session.binary(shard("q1"));
    session.binary(shard("q2"));
    expect(session.drain()).toEqual({ released: 2, announced: true });
    expect(session.state).toBe("draining");
    expect(rec.discarded).toEqual([
      { shardId: "q1", reason: "released: worker draining" },
      { shardId: "q2", reason: "released: worker draining" },
    ]);
    // Nothing new is taken while draining, and the released shards never run.
    session.binary(shard("late"));
    executor.answers!.result(executor.shard("run"), RESULT);
    executor.answers!.pump();
    expect(executor.ids()).toEqual([["run"]]);
    expect(transport.texts.slice(1)).toEqual([{ type: "draining", released: ["q1", "q2"] }]);
    expect(transport.frames).toEqual([RESULT]);
    expect(session.queued).toBe(0);
    expect(session.running).toBe(0);
    session.close();
    expect(session.state).toBe("closed");
  });

  it("sends no draining message before welcome, and a browser pause returns to idle and joins again", () => {
    const { session, transport } = setup();
    session.start(HELLO);
    session.opened();
    expect(session.drain()).toEqual({ released: 0, announced: false });
    expect(transport.types()).toEqual(["hello"]);
    session.lost();
    session.leave();
    expect(session.state).toBe("idle");
    session.start(HELLO);
    session.opened();
    session.text(welcomeMessage("w-1", "/models"));
    expect(session.state).toBe("ready");
  });
});

describe("worker session: malformed input", () => {
  it("never throws on garbage, answers none of it, and keeps serving", () => {
    const { session, transport, executor, rec } = setup();
    const texts = ["", "{", "null", "42", '"welcome"', "[]", '{"type":"shard"}', '{"type":"cancel"}', '{"type":"welcome","protocol":"1"}', '{"type":"error","code":7}', "\u0000\uffff"];
    const frames = [new Uint8Array(0), new Uint8Array([0xff, 0xff, 0xff, 0x7f, 1, 2, 3]), encodeFrame({ type: "shard", shardId: "h", jobId: "j", model: "not-a-sha", start: 0, end: 1 }, []), encodeFrame({ type: "shard", shardId: "h", jobId: "j", model: SHA, start: 3, end: 3 }, [])];
    const feed = (): void => {
      for (const t of texts) expect(() => session.text(t)).not.toThrow();
      for (const f of frames) expect(() => session.binary(f)).not.toThrow();
    };
    feed(); // idle
    session.start(HELLO);
    feed(); // connecting, before hello
    session.opened();
    feed(); // waiting for welcome
    session.text(welcomeMessage("w-1", "/models"));
    expect(session.state).toBe("ready");
    feed(); // ready
    expect(rec.malformed).toHaveLength(4 * (texts.length + frames.length));
    expect(rec.malformed.every((m) => m.code === "E_PROTOCOL")).toBe(true);
    expect(transport.types()).toEqual(["hello"]);
    expect(executor.batches).toEqual([]);
    session.binary(shard("good"));
    expect(executor.ids()).toEqual([["good"]]);
  });
});

describe("worker lifecycle and shared helpers", () => {
  it("allows only the documented transitions, and says which one it refused", () => {
    const allowed: [SessionState, SessionState][] = [
      ["idle", "connecting"],
      ["idle", "closed"],
      ["connecting", "ready"],
      ["connecting", "draining"],
      ["connecting", "idle"],
      ["connecting", "closed"],
      ["ready", "connecting"],
      ["ready", "draining"],
      ["ready", "closed"],
      ["draining", "idle"],
      ["draining", "closed"],
    ];
    const states: SessionState[] = ["idle", "connecting", "ready", "draining", "closed"];
    const got = states.flatMap((from) => states.filter((to) => canTransition(from, to)).map((to) => `${from}>${to}`));
    expect(got.sort()).toEqual(allowed.map(([from, to]) => `${from}>${to}`).sort());
    expect(() => assertTransition("closed", "connecting", "browser worker")).toThrow("browser worker cannot go from closed to connecting");
    const { session } = readySession();
    expect(() => session.start(HELLO)).toThrow(expect.objectContaining({ code: "E_STATE", message: "worker cannot start while ready" }));
    expect(() => session.leave()).toThrow(expect.objectContaining({ code: "E_STATE" }));
    session.close();
    session.close();
    expect(session.state).toBe("closed");
    expect(() => session.drain()).toThrow(expect.objectContaining({ code: "E_STATE", message: "worker cannot go from closed to draining" }));
  });

  it("dispatches coordinator text to one handler per kind, with the caller's context", () => {
    const seen: string[] = [];
    const handler = {
      welcome: (ctx: string) => seen.push(`${ctx}:welcome`),
      cancel: (ctx: string, m: { shardId: string }) => seen.push(`${ctx}:cancel ${m.shardId}`),
      error: (ctx: string, m: { code: string }) => seen.push(`${ctx}:error ${m.code}`),
      malformed: (ctx: string, e: EdgepoolError) => seen.push(`${ctx}:malformed ${e.code}`),
    };
    dispatchCoordinatorText(welcomeMessage("w", "/m"), "v1", handler);
    dispatchCoordinatorText(cancelMessage("s9", "r"), "v2", handler);
    dispatchCoordinatorText(errorMessage("E_AUTH", "no"), "v3", handler);
    dispatchCoordinatorText("{nope", "v4", handler);
    expect(seen).toEqual(["v1:welcome", "v2:cancel s9", "v3:error E_AUTH", "v4:malformed E_PROTOCOL"]);
  });

  it("guards a welcome: unexpected is E_PROTOCOL, another version is E_VERSION, ours while awaited is fine", () => {
    const ours = { type: "welcome" as const, protocol: PROTOCOL_VERSION, workerId: "w", modelPath: "/m" };
    expect(welcomeRefusal(true, "dialling", ours)).toBeNull();
    expect(welcomeRefusal(false, "ready", ours)?.code).toBe("E_PROTOCOL");
    expect(welcomeRefusal(true, "dialling", { ...ours, protocol: PROTOCOL_VERSION + 1 })?.code).toBe("E_VERSION");
  });
});
