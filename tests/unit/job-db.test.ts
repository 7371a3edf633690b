/** The job database's group commit: shards cut and done within one commit, and restarts. */
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { JobDb, VerificationSchema } from "../../coordinator/jobs/job-db.js";

const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(dirs.splice(0).map((d) => rm(d, { recursive: true, force: true })));
});

async function freshDb(): Promise<{ db: JobDb; file: string }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "edgepool-db-"));
  dirs.push(dir);
  const file = path.join(dir, "edgepool.sqlite");
  return { db: new JobDb(file), file };
}

function insert(db: JobDb, id: string, rows: number): void {
  db.putModel("m".repeat(64), 1, { inputs: [], outputs: [], opset: 13, fixedBatch: false, flopsPerSample: 0 });
  db.insertJob({ id, model: "m".repeat(64), rows, inputs: [], createdAt: Date.now(), fixedShardSize: 1, verification: VerificationSchema.parse({}) });
}

describe("group commit of shard records", () => {
  it("needs no record of a shard cut and done before any commit, and keeps the counters right", async () => {
    const { db, file } = await freshDb();
    insert(db, "j_a", 4);
    for (let i = 0; i < 4; i++) db.cutShard("j_a", i, i, i + 1);
    db.markShardDone("j_a", 0, 1);
    db.markShardDone("j_a", 2, 1);
    db.markShardDone("j_a", 2, 1); // a duplicate counts once
    const row = db.getJob("j_a")!;
    expect(row.shardCount).toBe(4);
    expect(row.nextRow).toBe(4);
    expect(row.shardsDone).toBe(2);
    expect(row.samplesDone).toBe(2);
    expect(db.pendingShards("j_a").map((s) => s.idx)).toEqual([1, 3]);

    // Shards done after their cut was committed go the other way (an UPDATE); both survive a reopen.
    db.markShardDone("j_a", 1, 1);
    db.markShardDone("j_a", 1, 1);
    db.close();
    const again = new JobDb(file);
    expect(again.pendingShards("j_a").map((s) => s.idx)).toEqual([3]);
    expect(again.getJob("j_a")!.shardsDone).toBe(3);
    again.close();
  });

  it("records failed attempts, in the same commit as the cut or after it, and keeps them across a reopen", async () => {
    const { db, file } = await freshDb();
    insert(db, "j_b", 2);
    db.cutShard("j_b", 0, 0, 1);
    db.recordAttempt("j_b", 0); // queued behind its cut: the row exists when it runs
    db.cutShard("j_b", 1, 1, 2);
    expect(db.pendingShards("j_b").map((s) => s.attempts)).toEqual([1, 0]);
    db.recordAttempt("j_b", 0);
    db.recordAttempt("j_b", 1);
    db.close();
    const again = new JobDb(file);
    expect(again.pendingShards("j_b")).toEqual([
      { idx: 0, start: 0, end: 1, attempts: 2 },
      { idx: 1, start: 1, end: 2, attempts: 1 },
    ]);
    again.close();
  });

  it("keeps a second opener of the same file out, with a reason", async () => {
    const { db, file } = await freshDb();
    expect(() => new JobDb(file)).toThrow(/another coordinator is using .*edgepool\.sqlite/);
    db.close();
  }, 15_000);
});
