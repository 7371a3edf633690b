/**
 * A token bucket: `ratePerSec` tokens a second flow in, up to `burst` held. Each message takes
 * one; a peer that sends faster than the rate for longer than the burst lasts runs dry. The
 * bucket refills lazily on `take`, so an idle connection costs no timer.
 */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly ratePerSec: number,
    private readonly burst: number,
    now = Date.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** Takes one token; false when the bucket is empty (the caller is over the rate). */
  take(now = Date.now()): boolean {
    const elapsed = Math.max(0, now - this.last);
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.ratePerSec) / 1000);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
