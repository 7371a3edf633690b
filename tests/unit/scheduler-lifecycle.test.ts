/**
 * Cancelling a job and a worker draining, driven by fake workers: a cancel reaches every
 * dispatch and frees its credit; a draining worker's released shards go back without counting
 * an attempt, and it is sent nothing more.
 */
import { afterEach, describe, expect, it } from "vitest";
import { EdgepoolError } from "../../shared/errors.js";
import type { CoordinatorEventMap } from "../../coordinator/observe/events.js";
import { Harness } from "./scheduler-fakes.js";

let harness: Harness | null = null;
afterEach(async () => {
  await harness?.close();
  harness = null;
});

describe("cancel", () => {
  it("sends a cancel for every dispatch of the job and frees their credit at once", async () => {
    const h = (harness = await Harness.create());
    const job = await h.job({ rows: 8 });
    const a = h.worker("a", "manual");
    const b = h.worker("b", "manual");
    h.scheduler.addJob(job);
    const [sentA, sentB] = await Promise.all([a.link.received(2), b.link.received(2)]);
    expect([a.session.inflight, b.session.inflight]).toEqual([2, 2]);

    const cancelled = h.events.next("jobCancelled", (e) => e.jobId === job.id);
    h.scheduler.cancelJob(job);
    expect(await cancelled).toEqual({ jobId: job.id, virtual: false });
    expect(a.link.cancels.sort()).toEqual(sentA!.map((r) => r.header.shardId).sort());
    expect(b.link.cancels.sort()).toEqual(sentB!.map((r) => r.header.shardId).sort());
    expect(a.link.texts.filter((m) => m.type === "cancel").every((m) => m.type === "cancel" && m.reason === "job cancelled")).toBe(true);
    expect([a.session.inflight, b.session.inflight]).toEqual([0, 0]);
    expect(a.session.freeCredit).toBe(a.session.credit);
    expect(job.state).toBe("cancelled");
    expect(h.scheduler.activeJobs).toEqual([]);
    expect(() => h.scheduler.cancelJob(job)).toThrow(expect.objectContaining({ code: "E_STATE" }) as EdgepoolError);

    // An answer to a cancelled shard is late; the freed credit serves the next job.
    a.answer(sentA![0]!);
    expect(h.scheduler.counters).toMatchObject({ lateResults: 1, completed: 0 });
    const next = await h.job({ rows: 4 });
    h.scheduler.addJob(next);
    expect([a.session.inflight, b.session.inflight]).toEqual([2, 2]);
    h.scheduler.cancelJob(next);
  });
});

describe("drain", () => {
  it("re-queues the shards a draining worker releases, without counting an attempt, and sends it nothing more", async () => {
    const h = (harness = await Harness.create());
    const job = await h.job({ rows: 6 });
    const d = h.worker("d", "manual");
    h.scheduler.addJob(job);
    const [running, queued] = await d.link.received(2);
    const retried: Array<CoordinatorEventMap["shardRetried"]> = [];
    h.events.on("shardRetried", (e) => retried.push(e));

    d.drain([queued!.header.shardId]);
    expect(d.session.state).toBe("draining");
    expect(d.session.inflight).toBe(1);
    expect(h.scheduler.counters.requeued).toBe(1);

    const resent = h.events.next("shardResent", (e) => e.jobId === job.id);
    const other = h.worker("other", "honest");
    const done = h.events.next("jobDone", (e) => e.jobId === job.id);
    // The one it is running still counts.
    d.answer(running!);
    await done;
    expect(retried).toEqual([]);
    expect(d.link.shards).toHaveLength(2);
    expect(d.session.shardsDone).toBe(1);
    expect(other.link.shards.map((r) => r.header.start)).toContain(queued!.header.start);
    // The handed-back shard going out again is the failover figure's sample.
    const r = await resent;
    expect(r.workerId).toBe(other.session.id);
    expect(r.afterMs).toBeGreaterThanOrEqual(0);
    expect(other.link.shards.some((x) => x.header.shardId === r.shardId && x.header.start === queued!.header.start)).toBe(true);
    expect(await h.output(job)).toEqual([1, 5, 9, 13, 17, 21]);
    expect(h.db.pendingShards(job.id)).toEqual([]);

    // A second draining message changes nothing (and does not throw).
    d.drain([]);
    expect(d.session.state).toBe("draining");
  });

  it("sends a draining worker none of the frames still being read when it said so", async () => {
    const h = (harness = await Harness.create());
    const job = await h.job({ rows: 4 });
    const d = h.worker("d", "manual");
    h.scheduler.addJob(job);
    // Two dispatches made; their frames are still being read.
    expect([d.session.inflight, d.link.shards.length]).toEqual([2, 0]);
    d.drain([]);
    h.worker("other", "honest");
    const done = h.events.next("jobDone", (e) => e.jobId === job.id);
    const outcome = await Promise.race([done.then(() => "done"), d.link.received(1).then(() => "sent to a draining worker")]);
    expect(outcome).toBe("done");
    expect(d.link.shards).toHaveLength(0);
    expect(d.session.inflight).toBe(0);
    expect(h.scheduler.counters.requeued).toBe(2);
    expect(await h.output(job)).toEqual([1, 5, 9, 13]);
  });
});
