/**
 * The scheduler's retries, driven by fake workers (scheduler-fakes.ts): a shard_error is
 * retried on another worker, the last allowed attempt fails the job with every cause, a
 * missed deadline is withdrawn and retried, and attempts survive a restart.
 */
import { afterEach, describe, expect, it } from "vitest";
import type { CoordinatorEventMap } from "../../coordinator/observe/events.js";
import { Harness } from "./scheduler-fakes.js";

let harness: Harness | null = null;
afterEach(async () => {
  await harness?.close();
  harness = null;
});

async function setUp(opts: Parameters<typeof Harness.create>[0] = {}): Promise<Harness> {
  harness = await Harness.create(opts);
  return harness;
}

describe("retries", () => {
  it("retries a shard_error on a worker that has not failed it", async () => {
    const h = await setUp();
    const job = await h.job({ rows: 1 });
    const bad = h.worker("bad", "manual");
    const good = h.worker("good", "honest");
    const retried: Array<CoordinatorEventMap["shardRetried"]> = [];
    h.events.on("shardRetried", (e) => retried.push(e));
    const done = h.events.next("jobDone", (e) => e.jobId === job.id);
    h.scheduler.addJob(job);
    const [first] = await bad.link.received(1);
    bad.fail(first!, "E_INFERENCE", "out of memory");
    await done;
    expect(retried).toEqual([{ jobId: job.id, shard: 0, workerId: "bad", code: "E_INFERENCE", message: "out of memory", attempts: 1 }]);
    expect(good.link.shards.map((r) => [r.header.start, r.header.end])).toEqual([[0, 1]]);
    expect(bad.link.shards).toHaveLength(1);
    expect(await h.output(job)).toEqual([1]);
    expect(h.scheduler.counters).toMatchObject({ failed: 1, requeued: 1, completed: 1 });
    expect(bad.session.shardErrors).toBe(1);
  });

  it("fails the job after maxShardAttempts, with every cause and the workers' error code", async () => {
    const h = await setUp({ maxShardAttempts: 3 });
    const job = await h.job({ rows: 1 });
    const terminal: string[] = [];
    for (const name of ["jobDone", "jobFailed", "jobCancelled"] as const) h.events.on(name, () => terminal.push(name));
    h.worker("a", "error");
    h.worker("b", "error");
    const failed = h.events.next("jobFailed", (e) => e.jobId === job.id);
    h.scheduler.addJob(job);
    const e = await failed;
    expect(e.code).toBe("E_MODEL_LOAD");
    expect(e.message).toMatch(/^shard 0 \(rows 0-1\) failed 3 times: /);
    // The retry went to the worker that had not failed it; the third to either.
    const causes = e.message.replace(/^[^:]*: /, "").split("; ");
    expect(causes).toHaveLength(3);
    expect(causes.slice(0, 2)).toEqual(["a: E_MODEL_LOAD a cannot load the model", "b: E_MODEL_LOAD b cannot load the model"]);
    expect(causes[2]).toMatch(/^[ab]: E_MODEL_LOAD [ab] cannot load the model$/);
    expect(job.state).toBe("failed");
    expect(h.scheduler.activeJobs).toEqual([]);
    expect(terminal).toEqual(["jobFailed"]);
  });

  it("maps a code outside the error table to E_INFERENCE", async () => {
    const h = await setUp({ maxShardAttempts: 1 });
    const job = await h.job({ rows: 1 });
    const w = h.worker("w", "manual");
    const failed = h.events.next("jobFailed", (e) => e.jobId === job.id);
    h.scheduler.addJob(job);
    const [r] = await w.link.received(1);
    w.fail(r!, "E_WHATEVER", "odd");
    expect((await failed).code).toBe("E_INFERENCE");
  });
});

describe("deadlines", () => {
  it("withdraws a shard past its deadline, cancels it, counts it timed out and retries it elsewhere", async () => {
    const h = await setUp({ probeTimeoutMs: 5000 });
    const job = await h.job({ rows: 1 });
    const slow = h.worker("slow", "manual");
    h.scheduler.addJob(job);
    const [late] = await slow.link.received(1);
    const fast = h.worker("fast", "honest");
    h.scheduler.checkDeadlines(Date.now() + 1000);
    expect(h.scheduler.counters.timedOut).toBe(0);
    expect(slow.session.inflight).toBe(1);

    const retried = h.events.next("shardRetried");
    const done = h.events.next("jobDone", (e) => e.jobId === job.id);
    h.scheduler.checkDeadlines(Date.now() + 6000);
    expect(await retried).toMatchObject({ workerId: "slow", code: "E_TIMEOUT", attempts: 1 });
    expect(h.scheduler.counters.timedOut).toBe(1);
    expect(slow.link.cancels).toEqual([late!.header.shardId]);
    expect(slow.session.inflight).toBe(0);
    await done;
    expect(fast.link.shards.map((r) => r.header.start)).toEqual([0]);

    // Its answer, when it comes, is late: dropped and counted.
    slow.answer(late!);
    expect(h.scheduler.counters.lateResults).toBe(1);
    expect(h.scheduler.counters.completed).toBe(1);
  });
});

describe("attempts across a restart", () => {
  /** Fails shard 0 of a one-row job twice on one worker, then restarts: the database is closed where it stands and opened again. */
  async function failTwiceAndRestart(h: Harness) {
    const job = await h.job({ rows: 1 });
    const w = h.worker("w", "manual");
    h.scheduler.addJob(job);
    const [first] = await w.link.received(1);
    w.fail(first!, "E_INFERENCE", "boom 1");
    const [, second] = await w.link.received(2);
    w.fail(second!, "E_INFERENCE", "boom 2");
    await w.link.received(3); // the third try is on its way when the coordinator stops
    const db = h.reopenDb();
    return { job, db };
  }

  it("records each failed attempt durably and restores the count on resume", async () => {
    const h = await setUp({ maxShardAttempts: 3 });
    const { job, db } = await failTwiceAndRestart(h);
    expect(db.pendingShards(job.id)).toEqual([{ idx: 0, start: 0, end: 1, attempts: 2 }]);
    const resumed = await h.open(job.id, 1);
    expect(resumed.pendingTasks().map((t) => t.attempts)).toEqual([2]);

    // One attempt is left: the next failure ends the job.
    const scheduler = h.newScheduler({ maxShardAttempts: 3 });
    const w = h.worker("w", "manual", { scheduler });
    const failed = h.events.next("jobFailed", (e) => e.jobId === job.id);
    scheduler.addJob(resumed);
    const [r] = await w.link.received(1);
    w.fail(r!, "E_INFERENCE", "boom 3");
    const e = await failed;
    expect(e.message).toMatch(/failed 3 times: w: E_INFERENCE boom 3$/);
    expect(db.getJob(job.id)!.state).toBe("failed");
  });

  it("fails a resumed job whose shard already used up its attempts, instead of retrying it", async () => {
    const h = await setUp({ maxShardAttempts: 3 });
    const { job } = await failTwiceAndRestart(h);
    const resumed = await h.open(job.id, 1);
    const scheduler = h.newScheduler({ maxShardAttempts: 2 });
    const w = h.worker("w", "manual", { scheduler });
    const failed = h.events.next("jobFailed", (e) => e.jobId === job.id);
    scheduler.addJob(resumed);
    const e = await Promise.race([failed, w.link.received(1).then(() => null)]);
    if (e === null) throw new Error("the spent shard was sent again");
    expect(e.code).toBe("E_INFERENCE");
    expect(e.message).toMatch(/^shard 0 \(rows 0-1\) failed 2 times before the coordinator restarted/);
    expect(w.session.inflight).toBe(0);
    expect(scheduler.activeJobs).toEqual([]);
  });
});
