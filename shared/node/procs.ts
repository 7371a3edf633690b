/** Real processes for integration tests: a coordinator, workers and CLI runs, all cleaned up. */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { NODE_FLAGS } from "./node-flags.js";

export const BIN = fileURLToPath(new URL("../../bin/edgepool.js", import.meta.url));

export interface Proc {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves when stdout+stderr match `re`, rejects after `timeoutMs` or if the process exits first. */
  waitFor: (re: RegExp, timeoutMs?: number) => Promise<RegExpMatchArray>;
  stop: (signal?: NodeJS.Signals) => Promise<number | null>;
}

export function startProc(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, [...NODE_FLAGS, BIN, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
  let out = "";
  let err = "";
  const waiters = new Set<() => void>();
  child.stdout!.on("data", (d: Buffer) => {
    out += d.toString();
    for (const w of waiters) w();
  });
  child.stderr!.on("data", (d: Buffer) => {
    err += d.toString();
    for (const w of waiters) w();
  });
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  return {
    child,
    stdout: () => out,
    stderr: () => err,
    waitFor: (re, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const m = (out + err).match(re);
          if (m) {
            cleanup();
            resolve(m);
          }
        };
        const timer = setTimeout(() => {
          cleanup();
          reject(new Error(`timed out waiting for ${re} in output of edgepool ${args[0]}:\n${out}\n${err}`));
        }, timeoutMs);
        const onExit = () => {
          check();
          cleanup();
          reject(new Error(`edgepool ${args[0]} exited before ${re}:\n${out}\n${err}`));
        };
        const cleanup = () => {
          clearTimeout(timer);
          waiters.delete(check);
          child.off("exit", onExit);
        };
        waiters.add(check);
        child.once("exit", onExit);
        check();
      }),
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

/** Starts one worker process and waits until the coordinator logs that it joined. */
export async function startWorker(coordinator: Proc, url: string, name: string, stateDir: string, extra: string[] = []): Promise<Proc> {
  const w = startProc(["worker", "--coordinator", url.replace("http", "ws"), "--name", name, "--state-dir", stateDir, "--log-level", "warn", ...extra]);
  await coordinator.waitFor(new RegExp(`"worker":"${name}"[^\\n]*worker joined`));
  return w;
}

/** A coordinator process on port 0 plus `n` worker processes, with the URL it printed. */
export async function startPool(n: number, dataDir: string, coordinatorArgs: string[] = []): Promise<{ url: string; coordinator: Proc; workers: Proc[]; stop: () => Promise<void> }> {
  const coordinator = startProc(["coordinator", "--port", "0", "--data-dir", path.join(dataDir, "coordinator"), ...coordinatorArgs]);
  const m = await coordinator.waitFor(/listening on (http:\/\/\S+)/);
  const url = m[1]!;
  const workers: Proc[] = [];
  for (let i = 0; i < n; i++) {
    const w = startProc(["worker", "--coordinator", url.replace("http", "ws"), "--name", `w${i + 1}`, "--state-dir", path.join(dataDir, `worker-${i + 1}`)]);
    workers.push(w);
  }
  for (const w of workers) await coordinator.waitFor(new RegExp(`"worker":"${w.child.spawnargs[w.child.spawnargs.indexOf("--name") + 1]}"[^\\n]*worker joined`));
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
