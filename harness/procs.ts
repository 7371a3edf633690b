/**
 * Real processes for integration tests and benchmarks: a coordinator, workers and CLI runs,
 * all cleaned up. A spawned coordinator is followed through its log: every event it emits
 * is one JSON line with `event: <name>` (coordinator/observe/log-events.ts), so waiting for
 * a worker to join is waiting for that event, parsed with its schema, never a match on
 * message text.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import type { CoordinatorEventMap, CoordinatorEventName } from "../coordinator/observe/events.js";
import { parseEventLine } from "../coordinator/observe/log-events.js";
import { NODE_FLAGS } from "../shared/node/node-flags.js";

export const BIN = fileURLToPath(new URL("../bin/edgepool.js", import.meta.url));

export interface Proc {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Every line of stdout and stderr that is JSON (log lines), parsed, in the order they came. */
  jsonLines: () => readonly unknown[];
  /** Resolves when stdout+stderr match `re`, rejects after `timeoutMs` or if the process exits first. */
  waitFor: (re: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>;
  /**
   * Resolves with the first value `pick` returns for a JSON line, those already seen included;
   * `pick` sees every line once, in order. Rejects after `timeoutMs` or if the process exits first.
   */
  waitForJson: <T>(pick: (line: unknown) => T | undefined, what: string, timeoutMs?: number) => Promise<T>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

/** Splits a stream into lines, keeping a partial last line until its end arrives. */
function lineSplitter(onLine: (line: string) => void): (chunk: string) => void {
  let partial = "";
  return (chunk) => {
    const parts = (partial + chunk).split("\n");
    partial = parts.pop()!;
    for (const l of parts) onLine(l);
  };
}

function parseJson(line: string): unknown {
  if (!line.startsWith("{")) return undefined;
  try {
    return JSON.parse(line) as unknown;
  } catch {
    return undefined;
  }
}

export function startProc(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, [...NODE_FLAGS, BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let out = "";
  let err = "";
  const json: unknown[] = [];
  const waiters = new Set<() => void>();
  const onLine = (l: string) => {
    const v = parseJson(l);
    if (v !== undefined) json.push(v);
  };
  const outLines = lineSplitter(onLine);
  const errLines = lineSplitter(onLine);
  child.stdout!.on("data", (d: Buffer) => {
    const s = d.toString();
    out += s;
    outLines(s);
    for (const w of waiters) w();
  });
  child.stderr!.on("data", (d: Buffer) => {
    const s = d.toString();
    err += s;
    errLines(s);
    for (const w of waiters) w();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));

  /** Runs `check` on every output until it returns true; rejects on timeout or exit. */
  const until = <T>(check: () => T | undefined, what: string, timeoutMs: number): Promise<T> =>
    new Promise((resolve, reject) => {
      const run = () => {
        const v = check();
        if (v !== undefined) {
          cleanup();
          resolve(v);
        }
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out waiting for ${what} in output of edgepool ${args[0]}:\n${out}\n${err}`));
      }, timeoutMs);
      const onExit = () => {
        run();
        cleanup();
        reject(new Error(`edgepool ${args[0]} exited before ${what}:\n${out}\n${err}`));
      };
      const cleanup = () => {
        clearTimeout(timer);
        waiters.delete(run);
        child.off("exit", onExit);
      };
      waiters.add(run);
      child.once("exit", onExit);
      run();
    });

  return {
    child,
    stdout: () => out,
    stderr: () => err,
    jsonLines: () => json,
    waitFor: (re, timeoutMs = 30_000) => until(() => (out + err).match(re) ?? undefined, String(re), timeoutMs),
    waitForJson: (pick, what, timeoutMs = 30_000) => {
      let next = 0;
      return until(() => {
        for (; next < json.length; ) {
          const v = pick(json[next++]);
          if (v !== undefined) return v;
        }
        return undefined;
      }, what, timeoutMs);
    },
    stop: async (signal = "SIGTERM") => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill(signal);
        const t = setTimeout(() => child.kill("SIGKILL"), 10_000);
        const code = await exited;
        clearTimeout(t);
        return code;
      }
      return child.exitCode;
    },
  };
}

export interface WaitForEventOptions {
  /** Resolve on the nth matching event (1 is the first), counting those already logged. */
  nth?: number;
  timeoutMs?: number;
}

/**
 * Resolves with the log line of the `nth` (default: first) event `name` of a spawned
 * coordinator that `match` accepts, those already logged included. The coordinator must log
 * JSON at the event's level (info for workers, jobs and its own start; debug for shards).
 */
export function waitForEvent<K extends CoordinatorEventName>(
  proc: Proc,
  name: K,
  match: (e: CoordinatorEventMap[K]) => boolean = () => true,
  opts: WaitForEventOptions = {},
): Promise<CoordinatorEventMap[K]> {
  const nth = opts.nth ?? 1;
  let seen = 0;
  return proc.waitForJson(
    (line) => {
      const e = parseEventLine(line, name);
      if (e === undefined || !match(e)) return undefined;
      seen += 1;
      return seen >= nth ? e : undefined;
    },
    nth === 1 ? `event ${name}` : `event ${name} #${nth}`,
    opts.timeoutMs,
  );
}

/** The events `name` a spawned coordinator has logged so far that `match` accepts. */
export function eventsOf<K extends CoordinatorEventName>(proc: Proc, name: K, match: (e: CoordinatorEventMap[K]) => boolean = () => true): Array<CoordinatorEventMap[K]> {
  return proc.jsonLines().flatMap((line) => {
    const e = parseEventLine(line, name);
    return e !== undefined && match(e) ? [e] : [];
  });
}

/** Runs the CLI to completion. */
export async function runCli(args: string[], timeoutMs = 120_000): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const p = startProc(args);
  const timer = setTimeout(() => p.child.kill("SIGKILL"), timeoutMs);
  const code = await new Promise<number | null>((resolve) => p.child.once("exit", (c) => resolve(c)));
  clearTimeout(timer);
  return { code, stdout: p.stdout(), stderr: p.stderr() };
}

export async function tempDir(prefix: string): Promise<{ dir: string; remove: () => Promise<void> }> {
  const dir = await mkdtemp(path.join(os.tmpdir(), `edgepool-${prefix}-`));
  return { dir, remove: () => rm(dir, { recursive: true, force: true }) };
}

/**
 * Starts `edgepool coordinator` with `args` and resolves once it listens, with its URL
 * and its start event (resumed jobs, TLS, tokens). Its log must be JSON at info or below.
 */
export async function startCoordinator(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ proc: Proc; url: string; listening: CoordinatorEventMap["coordinatorListening"] }> {
  const proc = startProc(["coordinator", ...args], env);
  try {
    const listening = await waitForEvent(proc, "coordinatorListening");
    return { proc, url: listening.url, listening };
  } catch (err) {
    await proc.stop("SIGKILL");
    throw err;
  }
}

/** Starts one worker process and waits until the coordinator has it (its workerJoined event). */
export async function startWorker(coordinator: Proc, url: string, name: string, stateDir: string, extra: string[] = []): Promise<Proc> {
  const w = startProc(["worker", "--coordinator", url.replace("http", "ws"), "--name", name, "--state-dir", stateDir, "--log-level", "warn", ...extra]);
  await waitForEvent(coordinator, "workerJoined", (e) => e.name === name);
  return w;
}

/** A coordinator process on port 0 plus `n` worker processes, with the URL it listens on. */
export async function startPool(n: number, dataDir: string, coordinatorArgs: string[] = []): Promise<{ url: string; coordinator: Proc; workers: Proc[]; stop: () => Promise<void> }> {
  const { proc: coordinator, url } = await startCoordinator(["--port", "0", "--data-dir", path.join(dataDir, "coordinator"), ...coordinatorArgs]);
  const names = Array.from({ length: n }, (_, i) => `w${i + 1}`);
  const workers = names.map((name, i) => startProc(["worker", "--coordinator", url.replace("http", "ws"), "--name", name, "--state-dir", path.join(dataDir, `worker-${i + 1}`)]));
  for (const name of names) await waitForEvent(coordinator, "workerJoined", (e) => e.name === name);
  return {
    url,
    coordinator,
    workers,
    stop: async () => {
      await Promise.all(workers.map((w) => w.stop()));
      await coordinator.stop();
    },
  };
}
