/**
 * Sending many small WebSocket messages in one turn of the event loop: ws writes each frame
 * with a syscall of its own, and with tiny shards those syscalls were a large part of the
 * cost per shard on both ends. Holding the TCP socket corked until the current tick's sends
 * are queued lets Node write them together. (ws does not expose its socket; `_socket` has
 * been its name for it across every major version.)
 */
import type { Socket } from "node:net";
import type { RawData, WebSocket } from "ws";

const corked = new WeakSet<Socket>();

/**
 * Sends `data` (binary unless a string), coalesced with the other sends of this tick; `sent`
 * is called once the bytes are written out (or the send failed), after which `data` is free.
 */
export function sendCoalesced(ws: WebSocket, data: string | Uint8Array, sent?: (err?: Error) => void): void {
  const socket = (ws as unknown as { _socket?: Socket })._socket;
  if (socket && !corked.has(socket) && typeof socket.cork === "function") {
    corked.add(socket);
    socket.cork();
    process.nextTick(() => {
      corked.delete(socket);
      socket.uncork();
    });
  }
  ws.send(data, { binary: typeof data !== "string" }, sent);
}

/**
 * Client options for the masking of frames a Node client sends. RFC 6455 masks client frames
 * so that a script in a browser cannot put chosen bytes on the wire for a confused proxy on
 * the path to misread; ws draws a random key per message and, for data it may not alter,
 * copies the whole payload to mask it: one more allocation and pass over every result. On
 * loopback there is no proxy, and inside TLS none can read the bytes, so there the key is
 * zero, which ws (and its peer) take as "nothing to mask". Plain ws:// elsewhere keeps it.
 */
export function clientMaskOptions(url: string): { generateMask?: (mask: Buffer) => void } {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return {};
  }
  const host = u.hostname.replace(/^\[|\]$/g, "");
  const loopback = host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
  return u.protocol === "wss:" || u.protocol === "https:" || loopback ? { generateMask: (mask) => mask.fill(0) } : {};
}

/** A received message's bytes as one Buffer (ws hands over a Buffer, an ArrayBuffer or fragments); no copy unless fragmented. */
export function messageBytes(data: RawData): Buffer {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return Buffer.from(data);
  return data;
}
