/** The worker session's state machine and counters, on a fake link (no socket). */
import { workerView } from "../../coordinator/api/workers.js";
import { describe, expect, it } from "vitest";
import { WorkerSession, type WorkerLink } from "../../coordinator/workers/session.js";
import { HelloSchema, PROTOCOL_VERSION } from "../../shared/protocol/messages.js";

function session(): { s: WorkerSession; sent: Array<string | Uint8Array>; link: WorkerLink & { isOpen: boolean } } {
  const sent: Array<string | Uint8Array> = [];
  const link = { isOpen: true, send: (d: string | Uint8Array) => void sent.push(d), close() {}, terminate() {}, ping() {}, pause() {} };
  return { s: new WorkerSession("conn-1", link, "test", 1), sent, link };
}

const hello = HelloSchema.parse({ type: "hello", protocol: PROTOCOL_VERSION, workerId: "w-1", name: "w", platform: "test", cpus: 1, memoryBytes: 0, runtime: { name: "fake", version: "0" }, threads: 1, slots: 2 });

describe("worker session", () => {
  it("goes handshake -> ready -> draining -> closed, and refuses any other move with E_STATE", () => {
    const { s } = session();
    expect(s.state).toBe("handshake");
    expect(() => s.startDraining()).toThrow(expect.objectContaining({ code: "E_STATE" }) as Error);
    s.markReady(hello);
    expect([s.state, s.id, s.name, s.freeCredit]).toEqual(["ready", "w-1", "w", 3]);
    expect(() => s.markReady(hello)).toThrow(/cannot go from ready to ready/);
    s.startDraining();
    expect([s.state, s.drained, s.joined, s.freeCredit]).toEqual(["draining", true, true, 0]);
    expect(() => s.startDraining()).toThrow(/cannot go from draining to draining/);
    expect(s.close()).toBe(true);
    expect(s.close()).toBe(false);
    expect([s.state, s.joined]).toEqual(["closed", false]);
    expect(() => s.markReady(hello)).toThrow(expect.objectContaining({ code: "E_STATE" }) as Error);
  });

  it("closes from handshake, and sends nothing once closed or once its link is down", () => {
    const { s, sent, link } = session();
    expect(s.send("a")).toBe(true);
    link.isOpen = false;
    expect(s.send("b")).toBe(false);
    link.isOpen = true;
    s.close();
    expect(s.send("c")).toBe(false);
    expect(sent).toEqual(["a"]);
  });

  it("is quarantined once: no credit, not idle, and a second mark throws", () => {
    const { s } = session();
    s.markReady(hello);
    expect(s.idle).toBe(true);
    s.quarantine("wrong answers");
    expect([s.quarantined, s.freeCredit, s.idle, workerView(s).quarantined]).toEqual([true, 0, false, true]);
    expect(() => s.quarantine("again")).toThrow(expect.objectContaining({ code: "E_STATE" }) as Error);
  });

  it("counts shards held and results owed, and never releases more than it holds", () => {
    const { s } = session();
    s.markReady(hello);
    expect(s.takeOwedResult()).toBe(false);
    s.hold(5);
    expect([s.inflight, s.freeCredit, workerView(s).lastShardRows]).toEqual([1, 2, 5]);
    expect(s.takeOwedResult()).toBe(true);
    expect(s.takeOwedResult()).toBe(false);
    s.release();
    expect(() => s.release()).toThrow(expect.objectContaining({ code: "E_STATE" }) as Error);
  });
});
