/**
 * What the worker session needs of a connection: send text, send a binary frame, close it,
 * and whether it is open. The Node daemon puts its reconnecting `ws` client behind it, the
 * browser page its WebSocket, a unit test an array. The session never dials: the host opens
 * connections and tells the session (`opened`, `lost`), the way nats.js keeps its protocol
 * apart from the socket underneath.
 */

export interface Transport {
  /** True while a connection is open and messages can be written to it. */
  readonly isOpen: boolean;
  /** Writes a text message; false when no connection is open (the message is dropped). */
  sendText(text: string): boolean;
  /**
   * Writes a binary frame; false when no connection is open (the frame is dropped and
   * `written` is never called). `written`, if given, is called once the frame has gone out
   * or failed, after which its buffer may be reused.
   */
  sendBinary(frame: Uint8Array, written?: (err?: Error) => void): boolean;
  /** Ends the current connection; whether another is dialled is the host's business. */
  close(code: number, reason: string): void;
}
