/**
 * The lifecycle of a worker's protocol session, one type for every kind of worker (the Node
 * daemon, the browser page; the swarm's virtual workers keep a leaner union of their own).
 *
 *   idle ──start──▶ connecting ──welcome──▶ ready
 *     ▲                 │  ▲                  │
 *     │                 │  └──connection lost─┘
 *     │                 ▼                     │
 *     └──── left ──── draining ◀───drain──────┘
 *
 * - `idle`: no connection and none wanted: not started yet, or (browser) paused.
 * - `connecting`: dialling, waiting to redial, or waiting for `welcome` after our `hello`.
 * - `ready`: welcomed; shards are accepted.
 * - `draining`: leaving: queued shards were handed back with one `draining` message (from
 *   `ready`; before `welcome` nothing was queued), running ones finish and report, no new
 *   shards are taken.
 * - `closed`: final; reached from any other state (shutdown, or a fatal error such as a
 *   protocol version mismatch).
 *
 * `connecting → idle` and `draining → idle` are how a browser pauses (it leaves the pool and
 * joins again later); the daemon goes from `draining` to `closed` instead. Every other
 * transition throws E_STATE: a bug, not a condition to handle.
 */
import { EdgepoolError } from "../../shared/errors.js";

export type SessionState = "idle" | "connecting" | "ready" | "draining" | "closed";

const TRANSITIONS: Readonly<Record<SessionState, readonly SessionState[]>> = {
  idle: ["connecting", "closed"],
  connecting: ["ready", "draining", "idle", "closed"],
  ready: ["connecting", "draining", "closed"],
  draining: ["idle", "closed"],
  closed: [],
};

/** True when the lifecycle allows going from `from` to `to`. */
export function canTransition(from: SessionState, to: SessionState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** Throws E_STATE, naming `who`, unless the lifecycle allows going from `from` to `to`. */
export function assertTransition(from: SessionState, to: SessionState, who = "worker"): void {
  if (!canTransition(from, to)) throw new EdgepoolError("E_STATE", `${who} cannot go from ${from} to ${to}`);
}
