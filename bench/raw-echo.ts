/**
 * The baseline for dispatch and transport figures: a plain WebSocket echo between processes
 * laid out as the pool's are (one server like the coordinator, one client process per worker,
 * all started with the pool's node flags), with the same connections, messages in flight and
 * message sizes, and nothing else done per message.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { fileURLToPath } from "node:url";
import { NODE_FLAGS } from "../shared/node/node-flags.js";
import { cpuSeconds } from "../shared/node/system.js";

export interface EchoResult {
  messagesPerSec: number;
  /** Request plus reply bytes per second. */
  bytesPerSec: number;
  /** CPU seconds each side used during the echoes: the server (which echoes) and the clients together. */
  cpu: { server: number; client: number };
}

const SERVER = fileURLToPath(new URL("./echo-server.ts", import.meta.url));
const CLIENT = fileURLToPath(new URL("./echo-client.ts", import.meta.url));

/** Resolves with the first match of `re` in the child's stdout; rejects if it exits first. */
function waitForLine(child: ChildProcess, re: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = "";
    const onData = (d: Buffer) => {
      out += d.toString();
      const m = re.exec(out);
      if (m) {
        child.stdout!.off("data", onData);
        child.off("exit", onExit);
        resolve(m);
      }
    };
    const onExit = (code: number | null) => reject(new Error(`echo process exited with ${code} before printing ${re}`));
    child.stdout!.on("data", onData);
    child.once("exit", onExit);
  });
}

/**
 * Runs `messages` round trips over `connections` sockets, one client process each, `window`
 * in flight on each socket.
 */
export async function rawEcho(opts: { connections: number; window: number; requestBytes: number; replyBytes: number; messages: number }): Promise<EchoResult> {
  const node = (script: string, args: string[]) =>
    spawn(process.execPath, [...NODE_FLAGS, "--import", "tsx", script, ...args], { stdio: ["pipe", "pipe", "inherit"] });
  const children: ChildProcess[] = [];
  try {
    const server = node(SERVER, ["--reply-bytes", String(opts.replyBytes)]);
    children.push(server);
    const port = Number((await waitForLine(server, /port (\d+)/))[1]);
    const perClient = Math.ceil(opts.messages / opts.connections);
    const clients = Array.from({ length: opts.connections }, () =>
      node(CLIENT, [
        "--url", `ws://127.0.0.1:${port}`,
        "--window", String(opts.window),
        "--request-bytes", String(opts.requestBytes),
        "--messages", String(perClient),
      ]),
    );
    children.push(...clients);
    await Promise.all(clients.map((c) => waitForLine(c, /ready/)));
    const pids = children.map((c) => c.pid!);
    const cpu0 = await Promise.all(pids.map(cpuSeconds));
    const t0 = performance.now();
    const done = clients.map((c) => waitForLine(c, /done/));
    for (const c of clients) c.stdin!.write("go\n");
    await Promise.all(done);
    const secs = (performance.now() - t0) / 1000;
    const cpu = (await Promise.all(pids.map(cpuSeconds))).map((c, i) => c - cpu0[i]!);
    const total = perClient * opts.connections;
    return {
      messagesPerSec: total / secs,
      bytesPerSec: (total * (opts.requestBytes + opts.replyBytes)) / secs,
      cpu: { server: cpu[0]!, client: cpu.slice(1).reduce((a, b) => a + b, 0) },
    };
  } finally {
    for (const c of children) c.kill("SIGTERM");
  }
}
