/**
 * The raw WebSocket baseline's server, run as its own process like a coordinator: it answers
 * every binary message with one of `--reply-bytes` bytes. Prints `port <n>` once listening.
 */
import { WebSocketServer } from "ws";

const arg = process.argv.indexOf("--reply-bytes");
const replyBytes = arg > 0 ? Number(process.argv[arg + 1]) : 0;
if (!Number.isInteger(replyBytes) || replyBytes < 0) {
  process.stderr.write("echo-server: --reply-bytes <n> must be a whole number\n");
  process.exit(2);
}
const reply = Buffer.alloc(replyBytes, 7);
const wss = new WebSocketServer({ host: "127.0.0.1", port: 0, maxPayload: 1024 ** 3, perMessageDeflate: false });
wss.on("connection", (ws) => ws.on("message", () => ws.send(reply, { binary: true })));
wss.on("listening", () => {
  const a = wss.address();
  process.stdout.write(`port ${typeof a === "object" && a !== null ? a.port : String(a)}\n`);
});
process.on("SIGTERM", () => wss.close(() => process.exit(0)));
