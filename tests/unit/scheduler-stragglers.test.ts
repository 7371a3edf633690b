/**
 * Straggler copies, driven by fake workers with the clock under the test's control (only
 * Date is faked: a shard is "late" by the wall clock, and nothing here waits on a timer).
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { Harness } from "./scheduler-fakes.js";

let harness: Harness | null = null;
afterEach(async () => {
  vi.useRealTimers();
  await harness?.close();
  harness = null;
});

describe("stragglers", () => {
  it("copies a late shard onto an idle worker; the first result wins and the other copy is cancelled", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const h = (harness = await Harness.create({ targetShardMs: 10 }));
    const job = await h.job({ rows: 1 });
    const slow = h.worker("slow", "manual");
    h.scheduler.addJob(job);
    const [original] = await slow.link.received(1);
    const idle = h.worker("idle", "manual");
    // Not late yet: nothing to copy.
    expect(idle.session.inflight).toBe(0);

    vi.setSystemTime(Date.now() + 10_000);
    h.scheduler.pump();
    const [copy] = await idle.link.received(1);
    expect([copy!.header.start, copy!.header.end]).toEqual([original!.header.start, original!.header.end]);
    expect(copy!.header.shardId).not.toBe(original!.header.shardId);
    expect(h.scheduler.counters.duplicated).toBe(1);

    const done = h.events.next("shardDone", (e) => e.jobId === job.id);
    idle.answer(copy!);
    expect((await done).workerId).toBe("idle");
    await h.events.next("jobDone", (e) => e.jobId === job.id);
    expect(slow.link.cancels).toEqual([original!.header.shardId]);
    expect(h.scheduler.counters.duplicatesCancelled).toBe(1);
    expect(slow.session.inflight).toBe(0);

    // The slow copy's answer comes after all: it is late, and nothing is written twice.
    slow.answer(original!);
    expect(h.scheduler.counters).toMatchObject({ lateResults: 1, completed: 1 });
    expect(await h.output(job)).toEqual([1]);
  });

  it("copies no shard of a verified job (its replicas already run on several workers)", async () => {
    vi.useFakeTimers({ toFake: ["Date"] });
    const h = (harness = await Harness.create({ targetShardMs: 10 }));
    const job = await h.job({ rows: 1, redundancy: 2 });
    const a = h.worker("a", "manual");
    const b = h.worker("b", "manual");
    h.scheduler.addJob(job);
    await Promise.all([a.link.received(1), b.link.received(1)]);
    const idle = h.worker("idle", "manual");
    vi.setSystemTime(Date.now() + 10_000);
    h.scheduler.pump();
    expect(idle.session.inflight).toBe(0);
    expect(h.scheduler.counters.duplicated).toBe(0);
    h.scheduler.cancelJob(job);
  });
});
