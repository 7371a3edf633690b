/** Runs at most `max` async tasks at once; the rest wait in order. */
export class Limiter {
  private active = 0;
  /** A FIFO as an array and a head index: shift() on tens of thousands of waiters is O(n) each. */
  private waiting: Array<() => void> = [];
  private head = 0;

  constructor(private readonly max: number) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active += 1;
    try {
      return await task();
    } finally {
      this.active -= 1;
      this.next();
    }
  }

  private next(): void {
    if (this.head >= this.waiting.length) return;
    const wake = this.waiting[this.head]!;
    this.head += 1;
    if (this.head === this.waiting.length) {
      this.waiting = [];
      this.head = 0;
    } else if (this.head >= 1024 && this.head * 2 >= this.waiting.length) {
      this.waiting = this.waiting.slice(this.head);
      this.head = 0;
    }
    wake();
  }
}
