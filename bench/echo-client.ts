/**
 * One end of the raw WebSocket baseline, run as its own process like a worker: it opens
 * `--connections` sockets to the echo server, prints `ready`, waits for a line on stdin, then
 * keeps `--window` messages of `--request-bytes` in flight on each socket until `--messages`
 * replies have come back over all of them, and prints `done`. It then stays, sockets open, until
 * it is stopped, so its CPU time can still be read.
 */
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { WebSocket } from "ws";
import { clientMaskOptions } from "../shared/node/ws-send.js";

const { values } = parseArgs({
  options: {
    url: { type: "string" },
    connections: { type: "string", default: "1" },
    window: { type: "string", default: "1" },
    "request-bytes": { type: "string" },
    messages: { type: "string" },
  },
});
const whole = (name: string, v: string | undefined) => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    process.stderr.write(`echo-client: --${name} <n> must be a whole number above 0\n`);
    process.exit(2);
  }
  return n;
};
const url = values.url ?? "";
const connections = whole("connections", values.connections);
const window = whole("window", values.window);
const payload = Buffer.alloc(whole("request-bytes", values["request-bytes"]), 3);
const perSocket = Math.ceil(whole("messages", values.messages) / connections);

const sockets = await Promise.all(
  Array.from({ length: connections }, () => new Promise<WebSocket>((resolve, reject) => {
    // Masked as the pool's workers mask on loopback (clientMaskOptions), so both sides compare alike.
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 1024 ** 3, ...clientMaskOptions(url) });
    ws.once("open", () => resolve(ws));
    ws.once("error", reject);
  })),
);
process.stdout.write("ready\n");
const lines = createInterface({ input: process.stdin });
await new Promise((resolve) => lines.once("line", resolve));
lines.close();
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
        for (; sent < Math.min(window, perSocket); sent++) ws.send(payload, { binary: true });
      }),
  ),
);
process.stdout.write("done\n");
