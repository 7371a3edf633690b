/**
 * Event log lines round-trip: what logEvents writes for an event, parseEventLine reads back as
 * the same payload (pino's own `name` and the renamed fields included), and per-shard events
 * are written only when debug lines are.
 */
import { Writable } from "node:stream";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { CoordinatorEvents, type CoordinatorEventMap } from "../../coordinator/observe/events.js";
import { logEvents, parseEventLine } from "../../coordinator/observe/log-events.js";

function capture(level: "info" | "debug"): { events: CoordinatorEvents; lines: () => unknown[] } {
  const out: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      out.push(chunk.toString("utf8"));
      done();
    },
  });
  const log = pino({ name: "coordinator", level }, sink);
  const events = new CoordinatorEvents(log);
  logEvents(events, log);
  return { events, lines: () => out.join("").trim().split("\n").filter(Boolean).map((l) => JSON.parse(l) as unknown) };
}

describe("event log lines", () => {
  it("carry the event's name and payload, and parse back into the payload", () => {
    const { events, lines } = capture("info");
    const joined: CoordinatorEventMap["workerJoined"] = { workerId: "w-1", name: "phone-7", platform: "android", cpus: 8, threads: 2, slots: 1, virtual: false, remote: "10.0.0.7:5000" };
    const failed: CoordinatorEventMap["jobFailed"] = { jobId: "j_1", code: "E_SHAPE", message: "output 'y' has 3 rows for a shard of 4", virtual: true };
    events.emit("workerJoined", joined);
    events.emit("jobFailed", failed);
    const [a, b] = lines();
    expect(a).toMatchObject({ event: "workerJoined", name: "coordinator", worker: "phone-7", msg: "worker joined", level: 30 });
    expect(b).toMatchObject({ event: "jobFailed", err: failed.message, msg: "job failed", level: 50 });
    expect(parseEventLine(a, "workerJoined")).toEqual(joined);
    expect(parseEventLine(b, "jobFailed")).toEqual(failed);
    // Another event's line, or one that lacks the fields, is not this event.
    expect(parseEventLine(a, "workerLeft")).toBeUndefined();
    expect(parseEventLine({ event: "workerJoined", worker: "x" }, "workerJoined")).toBeUndefined();
  });

  it("write per-shard events only when debug is on", () => {
    const done: CoordinatorEventMap["shardDone"] = { jobId: "j_1", shardId: "j_1.0.1", workerId: "w-1", rows: 4, ms: 2.5, virtual: false };
    const info = capture("info");
    expect(info.events.listening("shardDone")).toBe(false);
    info.events.emit("shardDone", done);
    expect(info.lines()).toEqual([]);
    const debug = capture("debug");
    debug.events.emit("shardDone", done);
    expect(parseEventLine(debug.lines()[0], "shardDone")).toEqual(done);
  });

  it("a listener that unsubscribes while the event runs leaves the others called", () => {
    const { events } = capture("info");
    const calls: string[] = [];
    const off = events.on("jobStarted", () => {
      calls.push("first");
      off();
    });
    events.on("jobStarted", () => calls.push("second"));
    events.emit("jobStarted", { jobId: "j_1" });
    events.emit("jobStarted", { jobId: "j_2" });
    expect(calls).toEqual(["first", "second", "second"]);
  });
});
