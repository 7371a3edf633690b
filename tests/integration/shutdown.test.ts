/**
 * The coordinator's close, in-process on a real socket: graceful when its peers go (a worker
 * told 1001 answers the close handshake), forced after the grace period when one does not
 * (a raw socket that upgraded and then never reads), and the same promise however often it
 * is called. Waits on the coordinator's own events, never on time.
 */
import { randomBytes } from "node:crypto";
import net from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { parseCoordinatorConfig } from "../../coordinator/config.js";
import { Coordinator } from "../../coordinator/coordinator.js";
import { createLogger } from "../../shared/node/logger.js";
import { helloMessage } from "../../shared/protocol/encode.js";
import { tempDir } from "../../harness/procs.js";

/** The grace period of the test that waits it out; the others keep the default (5 s). */
const SHORT_GRACE_MS = 400;

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => undefined);
});

async function start(closeGraceMs?: number): Promise<Coordinator> {
  const tmp = await tempDir("shutdown");
  cleanups.push(tmp.remove);
  const log = createLogger({ name: "coordinator", level: "silent" });
  const c = await Coordinator.start(parseCoordinatorConfig({ port: 0, dataDir: tmp.dir, logLevel: "silent", ...(closeGraceMs === undefined ? {} : { closeGraceMs }) }), log);
  cleanups.push(() => c.close());
  return c;
}

function hello(name: string): string {
  return helloMessage({ workerId: `${name}-${randomBytes(4).toString("hex")}`, name, platform: "linux", cpus: 1, memoryBytes: 1e9, runtime: { name: "test", version: "0" }, threads: 1, slots: 1 });
}

describe("closing the coordinator", () => {
  it("is graceful when the workers answer: each is told 1001, nothing is cut, and a second close is the same promise", async () => {
    const c = await start();
    expect(c.state).toBe("listening");
    const ws = new WebSocket(c.url.replace("http", "ws"));
    const closed = new Promise<number>((resolve) => ws.once("close", (code) => resolve(code)));
    const joined = c.events.next("workerJoined", (e) => e.name === "polite");
    ws.once("open", () => ws.send(hello("polite")));
    await joined;

    const stopped = c.events.next("coordinatorStopped");
    const first = c.close();
    expect(c.state).toBe("closing");
    expect(c.close()).toBe(first);
    expect(await closed).toBe(1001);
    await first;
    expect(c.state).toBe("closed");
    expect((await stopped).forced).toBe(false);
    await expect(c.close()).resolves.toBeUndefined();
  });

  it("cuts a peer that ignores the close handshake once the grace period is over", async () => {
    const c = await start(SHORT_GRACE_MS);
    // A WebSocket upgrade by hand: the socket reads the 101 and then nothing, so the close frame is never answered.
    const socket = net.connect(c.port, "127.0.0.1");
    cleanups.push(async () => socket.destroy());
    const upgraded = new Promise<string>((resolve) => socket.once("data", (d: Buffer) => resolve(d.toString("latin1"))));
    socket.write(
      "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
        `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
    );
    expect(await upgraded).toMatch(/^HTTP\/1\.1 101 /);
    socket.pause();
    const ended = new Promise<void>((resolve) => socket.once("close", () => resolve()));

    const stopped = c.events.next("coordinatorStopped");
    await c.close();
    const e = await stopped;
    expect(e.forced).toBe(true);
    expect(e.ms).toBeGreaterThanOrEqual(SHORT_GRACE_MS);
    expect(c.state).toBe("closed");
    socket.resume();
    await ended;
    expect(socket.destroyed).toBe(true);
  });
});
