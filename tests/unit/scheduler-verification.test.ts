/**
 * Redundancy, canaries and quarantine, driven by fake workers: replicas go to different
 * workers, a worker outside the agreed answer loses trust and is quarantined after two, a
 * worker gets real shards only after its canary matched, and a quarantined worker's shards go
 * elsewhere while it stays quarantined when it reconnects.
 */
import { workerView } from "../../coordinator/api/workers.js";
import { afterEach, describe, expect, it, vi } from "vitest";
import type { CoordinatorEventMap } from "../../coordinator/observe/events.js";
import { Harness, shardIdx, type FakeWorker } from "./scheduler-fakes.js";

let harness: Harness | null = null;
afterEach(async () => {
  vi.useRealTimers();
  await harness?.close();
  harness = null;
});

/** The workers that got each shard index of `jobId`. */
function holders(jobId: string, workers: FakeWorker[]): Map<number, string[]> {
  const by = new Map<number, string[]>();
  for (const w of workers) {
    for (const r of w.link.shards) {
      if (r.header.jobId !== jobId) continue;
      const idx = shardIdx(r.header.shardId);
      by.set(idx, [...(by.get(idx) ?? []), w.id]);
    }
  }
  return by;
}

describe("redundancy", () => {
  it("runs each shard on k different workers, and quarantines the one that disagreed twice", async () => {
    const h = (harness = await Harness.create());
    const job = await h.job({ rows: 6, redundancy: 2 });
    const a = h.worker("a", "honest");
    const b = h.worker("b", "honest");
    const liar = h.worker("liar", "liar");
    const quarantined: Array<CoordinatorEventMap["workerQuarantined"]> = [];
    let liarShardsAtQuarantine = -1;
    h.events.on("workerQuarantined", (e) => {
      quarantined.push(e);
      liarShardsAtQuarantine = liar.session.inflight;
    });
    const done = h.events.next("jobDone", (e) => e.jobId === job.id);
    h.scheduler.addJob(job);
    await done;

    expect(await h.output(job)).toEqual([1, 5, 9, 13, 17, 21]);
    const by = holders(job.id, [a, b, liar]);
    expect([...by.keys()].sort()).toEqual([0, 1, 2, 3, 4, 5]);
    for (const [idx, ws] of by) {
      expect(new Set(ws).size, `shard ${idx} went to ${ws.join(", ")}`).toBe(ws.length);
      expect(ws.length).toBeGreaterThanOrEqual(2);
    }
    expect(liar.session.disagreements).toBe(2);
    expect(liar.session.trust).toBeLessThan(0.5);
    expect(liar.session.quarantined).toBe(true);
    expect(quarantined).toEqual([{ workerId: "liar", name: "liar", trust: 0.25, reason: "2 results disagreed with the verified answer" }]);
    // Withdrawn at once, and given nothing after.
    expect(liarShardsAtQuarantine).toBe(0);
    expect(liar.session.inflight).toBe(0);
    expect(a.session.agreements + b.session.agreements).toBe(12);
    expect(h.scheduler.counters).toMatchObject({ verified: 6, replicaMismatches: 2, quarantined: 1 });
    expect(h.scheduler.quarantine.get("liar")).toBe("2 results disagreed with the verified answer");
  });
});

describe("canaries", () => {
  it("gives a worker real shards only after its canary matched, and quarantines one that answered it wrongly", async () => {
    const h = (harness = await Harness.create());
    const job = await h.job({ rows: 4, canaries: [2] });
    const honest = h.worker("honest", "manual");
    h.scheduler.addJob(job);
    const [canary] = await honest.link.received(1);
    expect(shardIdx(canary!.header.shardId)).toBe(-1);
    expect([canary!.header.start, canary!.header.end]).toEqual([2, 3]);
    // It has credit for more, but gets nothing else until its canary is answered.
    expect(honest.session.inflight).toBe(1);

    const liar = h.worker("liar", "manual");
    const [liarCanary] = await liar.link.received(1);
    expect(liarCanary!.header.start).toBe(2);
    const q = h.events.next("workerQuarantined");
    liar.answer(liarCanary!, new Float32Array([999]));
    expect(await q).toMatchObject({ workerId: "liar", reason: `answered canary row 2 of job ${job.id} wrongly` });
    expect(h.scheduler.counters.canariesFailed).toBe(1);
    expect(liar.session.inflight).toBe(0);

    honest.link.onShard = (r) => setImmediate(() => honest.answer(r));
    const shardDone: string[] = [];
    h.events.on("shardDone", (e) => shardDone.push(e.workerId));
    const done = h.events.next("jobDone", (e) => e.jobId === job.id);
    honest.answer(canary!);
    await done;
    expect(h.scheduler.counters.canariesPassed).toBe(1);
    expect(honest.session.agreements).toBe(1);
    expect(shardDone).toEqual(["honest", "honest", "honest", "honest"]);
    expect(liar.link.shards).toHaveLength(1); // its canary, nothing real
    expect(liar.session.shardsDone).toBe(0);
    expect(await h.output(job)).toEqual([1, 5, 9, 13]);
  });
});

describe("quarantine", () => {
  it("moves a quarantined worker's shards elsewhere, and keeps it quarantined when it reconnects with the same id", async () => {
    const h = (harness = await Harness.create());
    const plain = await h.job({ rows: 2 });
    const checked = await h.job({ rows: 2, canaries: [0] });
    h.scheduler.addJob(plain);
    h.scheduler.addJob(checked);
    // Credit 2: a real shard of `plain`, then the canary of `checked`.
    const liar = h.worker("liar", "manual");
    const got = await liar.link.received(2);
    const real = got.find((r) => r.header.jobId === plain.id)!;
    const canary = got.find((r) => r.header.jobId === checked.id)!;
    expect([real.header.start, shardIdx(canary.header.shardId)]).toEqual([0, -1]);

    h.worker("honest", "honest");
    const rowsBy: Array<{ jobId: string; workerId: string; rows: number }> = [];
    h.events.on("shardDone", (e) => rowsBy.push({ jobId: e.jobId, workerId: e.workerId, rows: e.rows }));
    const bothDone = Promise.all([h.events.next("jobDone", (e) => e.jobId === plain.id), h.events.next("jobDone", (e) => e.jobId === checked.id)]);
    liar.answer(canary, new Float32Array([-1]));
    await bothDone;
    expect(liar.link.cancels).toEqual([real.header.shardId]);
    expect(rowsBy.every((r) => r.workerId === "honest")).toBe(true);
    expect(rowsBy.filter((r) => r.jobId === plain.id)).toHaveLength(2);
    expect(await h.output(plain)).toEqual([1, 5]);
    expect(await h.output(checked)).toEqual([1, 5]);

    liar.leave();
    const again = h.worker("liar", "manual");
    expect(again.session.quarantined).toBe(true);
    expect(workerView(again.session).quarantined).toBe(true);
    const next = await h.job({ rows: 4 });
    const done = h.events.next("jobDone", (e) => e.jobId === next.id);
    h.scheduler.addJob(next);
    expect(again.session.inflight).toBe(0);
    await done;
    expect(again.link.shards).toHaveLength(0);
    expect(h.scheduler.counters.quarantined).toBe(1);
  });

  it("never copies a straggler onto a quarantined worker that reconnected", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const h = (harness = await Harness.create({ targetShardMs: 10 }));
    const checked = await h.job({ rows: 1, canaries: [0] });
    const liar = h.worker("liar", "manual");
    h.scheduler.addJob(checked);
    const [canary] = await liar.link.received(1);
    liar.answer(canary!, new Float32Array([-1]));
    expect(liar.session.quarantined).toBe(true);
    h.scheduler.cancelJob(checked);
    liar.leave();

    const job = await h.job({ rows: 1 });
    const slow = h.worker("slow", "manual");
    h.scheduler.addJob(job);
    await slow.link.received(1);
    // Back while every shard is out: a pump with nothing to send goes straight to stragglers.
    const again = h.worker("liar", "manual");
    vi.setSystemTime(Date.now() + 10_000);
    h.scheduler.pump();
    expect(again.session.inflight).toBe(0);
    expect(h.scheduler.counters.duplicated).toBe(0);

    // An honest idle worker would have taken the copy (at the next scan: they are spaced out).
    vi.setSystemTime(Date.now() + 1000);
    const idle = h.worker("idle", "manual");
    expect(idle.session.inflight).toBe(1);
    expect(h.scheduler.counters.duplicated).toBe(1);
    h.scheduler.cancelJob(job);
  });
});
