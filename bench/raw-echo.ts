/**
 * The baseline for dispatch and transport figures: the same number of connections, messages
 * in flight, message sizes and reply sizes as the pool uses, over a plain WebSocket echo
 * between two processes, with nothing else done per message.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { clientMaskOptions } from "../shared/ws-send.js";
import { cpuSeconds } from "./measure.js";
import { WebSocket } from "ws";

export interface EchoResult {
  messagesPerSec: number;
  /** Request plus reply bytes per second. */
  bytesPerSec: number;
  /** CPU seconds each end used during the echoes: the server (which echoes) and the client. */
  cpu: { server: number; client: number };
}

const SERVER = fileURLToPath(new URL("./echo-server.ts", import.meta.url));

/** Runs `messages` round trips over `connections` sockets, `window` in flight on each. */
export async function rawEcho(opts: { connections: number; window: number; requestBytes: number; replyBytes: number; messages: number }): Promise<EchoResult> {
  const server = spawn(process.execPath, ["--import", "tsx", SERVER, "--reply-bytes", String(opts.replyBytes)], { stdio: ["ignore", "pipe", "inherit"] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      let out = "";
      server.stdout!.on("data", (d: Buffer) => {
        out += d.toString();
        const m = /port (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      server.once("exit", (code) => reject(new Error(`echo server exited with ${code}`)));
    });
    const sockets = await Promise.all(
      Array.from({ length: opts.connections }, () => new Promise<WebSocket>((resolve, reject) => {
        // Masked as the pool's workers mask on loopback (clientMaskOptions), so both sides compare alike.
        const url = `ws://127.0.0.1:${port}`;
        const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1024 ** 3, ...clientMaskOptions(url) });
        ws.once("open", () => resolve(ws));
        ws.once("error", reject);
      })),
    );
    const payload = Buffer.alloc(opts.requestBytes, 3);
    const perSocket = Math.ceil(opts.messages / opts.connections);
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const server0 = await cpuSeconds(server.pid!);
    await Promise.all(
      sockets.map(
        (ws) =>
          new Promise<void>((resolve) => {
            let sent = 0;
            let received = 0;
            ws.on("message", () => {
              received += 1;
              if (received === perSocket) resolve();
              else if (sent < perSocket) {
                sent += 1;
                ws.send(payload, { binary: true });
              }
            });
            for (; sent < Math.min(opts.window, perSocket); sent++) ws.send(payload, { binary: true });
          }),
      ),
    );
    const secs = (performance.now() - t0) / 1000;
    const self = process.cpuUsage(cpu0);
    const cpu = { server: (await cpuSeconds(server.pid!)) - server0, client: (self.user + self.system) / 1e6 };
    for (const ws of sockets) ws.close();
    const total = perSocket * opts.connections;
    return { messagesPerSec: total / secs, bytesPerSec: (total * (opts.requestBytes + opts.replyBytes)) / secs, cpu };
  } finally {
    server.kill("SIGTERM");
  }
}
