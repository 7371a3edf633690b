/**
 * Seeded randomness for fuzz tests: every case derives from one printed seed, so a failure
 * reproduces with EDGEPOOL_FUZZ_SEED=<seed>. Mutators for bytes and for JSON values.
 */

/** The seed for this run: EDGEPOOL_FUZZ_SEED when set, else a fresh one. */
export function fuzzSeed(): number {
  const given = Number(process.env.EDGEPOOL_FUZZ_SEED);
  return Number.isInteger(given) && given > 0 ? given >>> 0 : (Math.random() * 2 ** 32) >>> 0 || 1;
}

/** mulberry32: small, fast, good enough to pick cases. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }

  /** Uniform in [0, 1). */
  next(): number {
    this.s = (this.s + 0x6d2b79f5) >>> 0;
    let t = this.s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  }

  /** Integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(xs: readonly T[]): T {
    return xs[this.int(xs.length)]!;
  }

  bytes(n: number): Buffer {
    const b = Buffer.allocUnsafe(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }

  /** A short string, sometimes hostile: traversal, control characters, unicode, huge. */
  string(): string {
    return this.pick([
      () => "",
      () => "../../etc/passwd",
      () => "..",
      () => "%2e%2e%2f",
      () => "a".repeat(1 + this.int(300)),
      () => "\u0000\u0001\u001b[2J",
      () => "\ud800",
      () => "名前🙂",
      () => "x".repeat(5000),
      () => this.bytes(1 + this.int(40)).toString("latin1"),
      () => String(this.int(1e9)),
    ])();
  }
}

/** Values that break naive code: wrong types, extremes, nesting. */
function weirdValue(rng: Rng, depth = 0): unknown {
  const leaves: Array<() => unknown> = [
    () => null,
    () => true,
    () => -1,
    () => 0,
    () => 1e308,
    () => -1e308,
    () => 2 ** 53 + 1,
    () => 0.5,
    () => rng.int(100),
    () => rng.string(),
    () => [],
    () => ({}),
  ];
  if (depth < 3) {
    leaves.push(() => Array.from({ length: rng.int(5) }, () => weirdValue(rng, depth + 1)));
    leaves.push(() => Object.fromEntries(Array.from({ length: rng.int(4) }, () => [rng.string().slice(0, 20), weirdValue(rng, depth + 1)])));
  }
  return rng.pick(leaves)();
}

/** A copy of a JSON value with one to three fields replaced, removed or added. */
export function mutateJson(rng: Rng, value: unknown): unknown {
  const copy = JSON.parse(JSON.stringify(value)) as unknown;
  const n = 1 + rng.int(3);
  for (let k = 0; k < n; k++) {
    // Walk down to a random object or array.
    let node: unknown = copy;
    for (let d = 0; d < 3 && typeof node === "object" && node !== null; d++) {
      const keys = Object.keys(node);
      if (keys.length === 0 || rng.chance(0.4)) break;
      const child = (node as Record<string, unknown>)[rng.pick(keys)];
      if (typeof child !== "object" || child === null) break;
      node = child;
    }
    if (typeof node !== "object" || node === null) return weirdValue(rng);
    const obj = node as Record<string, unknown>;
    const keys = Object.keys(obj);
    const op = rng.int(3);
    if (op === 0 && keys.length > 0) delete obj[rng.pick(keys)];
    else if (op === 1 && keys.length > 0) obj[rng.pick(keys)] = weirdValue(rng);
    // Into an array, appended: a numeric key like "669770034" would make it sparse and huge.
    else if (Array.isArray(obj)) obj.push(weirdValue(rng));
    else obj[rng.chance(0.5) ? rng.string().slice(0, 30) : "__proto__"] = weirdValue(rng);
  }
  return copy;
}

/** A copy of `b` with bytes flipped, cut, repeated or spliced. */
export function mutateBytes(rng: Rng, b: Uint8Array): Buffer {
  let out = Buffer.from(b);
  const n = 1 + rng.int(4);
  for (let k = 0; k < n; k++) {
    const op = rng.int(5);
    if (op === 0 && out.length > 0) out[rng.int(out.length)] = rng.int(256);
    else if (op === 1) out = out.subarray(0, rng.int(out.length + 1));
    else if (op === 2) out = Buffer.concat([out, rng.bytes(rng.int(64))]);
    else if (op === 3 && out.length > 4) {
      const at = rng.int(out.length - 4);
      out.writeUInt32LE(rng.pick([0, 1, 7, 8, 0xffffffff, 0x7fffffff, rng.int(2 ** 32), out.length, out.length - at]) >>> 0, at);
    } else if (out.length > 0) {
      const at = rng.int(out.length);
      out = Buffer.concat([out.subarray(0, at), out.subarray(at, at + rng.int(32)), out.subarray(at)]);
    }
  }
  return out;
}
