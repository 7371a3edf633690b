/**
 * Reconnect delays: exponential with jitter. No `node:` imports: the browser worker uses
 * this file too.
 */

/** Delay before reconnect attempt `attempt` (0-based): doubling from min, capped at max, jittered. */
export function backoffDelay(attempt: number, minMs: number, maxMs: number, random: () => number = Math.random): number {
  const ceiling = Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
  // Jitter over the upper half spreads out workers that lost the coordinator at the same
  // moment, so they do not all dial back in one burst.
  return Math.max(minMs, Math.round(ceiling / 2 + (random() * ceiling) / 2));
}
