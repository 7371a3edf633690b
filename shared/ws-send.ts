/**
 * Sending many small WebSocket messages in one turn of the event loop: ws writes each frame
 * with a syscall of its own, and with tiny shards those syscalls were a large part of the
 * cost per shard on both ends. Holding the TCP socket corked until the current tick's sends
 * are queued lets Node write them together. (ws does not expose its socket; `_socket` has
 * been its name for it across every major version.)
 */
import type { Socket } from "node:net";
import type { WebSocket } from "ws";

const corked = new WeakSet<Socket>();

/** Sends `data` (binary unless a string), coalesced with the other sends of this tick. */
export function sendCoalesced(ws: WebSocket, data: string | Uint8Array): void {
  const socket = (ws as unknown as { _socket?: Socket })._socket;
  if (socket && !corked.has(socket) && typeof socket.cork === "function") {
    corked.add(socket);
    socket.cork();
    process.nextTick(() => {
      corked.delete(socket);
      socket.uncork();
    });
  }
  ws.send(data, { binary: typeof data !== "string" });
}
