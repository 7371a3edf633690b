/**
 * A pool on this machine: a coordinator in this process and worker daemons as child
 * processes, each a real `edgepool worker` talking over a real socket. Used by `demo` and
 * `conformance` when no coordinator is given.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Coordinator } from "../coordinator/coordinator.js";
import { parseCoordinatorConfig } from "../coordinator/config.js";
import { EdgepoolError } from "../shared/errors.js";
import { createLogger } from "../shared/node/logger.js";
import { NODE_FLAGS } from "../shared/node/node-flags.js";

export const EDGEPOOL_BIN = fileURLToPath(new URL("./edgepool.js", import.meta.url));

export interface LocalPoolOptions {
  workers: number;
  threads?: number;
  logLevel?: "info" | "warn" | "error" | "silent";
  statsIntervalMs?: number;
  /** Write the coordinator's log (at info) to this file instead of stderr. */
  coordinatorLog?: string;
}

export class LocalPool {
  private constructor(
    readonly coordinator: Coordinator,
    readonly children: ChildProcess[],
    private readonly dir: string,
  ) {}

  static async start(opts: LocalPoolOptions): Promise<LocalPool> {
    const dir = await mkdtemp(path.join(os.tmpdir(), "edgepool-local-"));
    const log = opts.coordinatorLog
      ? createLogger({ name: "coordinator", level: "info", file: opts.coordinatorLog })
      : createLogger({ name: "coordinator", level: opts.logLevel ?? "warn", stderr: true });
    const config = parseCoordinatorConfig({
      port: 0,
      host: "127.0.0.1",
      dataDir: path.join(dir, "coordinator"),
      ...(opts.statsIntervalMs ? { statsIntervalMs: opts.statsIntervalMs } : {}),
    });
    const coordinator = await Coordinator.start(config, log);
    const children: ChildProcess[] = [];
    const pool = new LocalPool(coordinator, children, dir);
    try {
      for (let i = 0; i < opts.workers; i++) {
        const child = spawn(
          process.execPath,
          [
            ...NODE_FLAGS,
            EDGEPOOL_BIN, "worker",
            "--coordinator", coordinator.url.replace(/^http/, "ws"),
            "--name", `local-${i + 1}`,
            "--threads", String(opts.threads ?? 1),
            "--state-dir", path.join(dir, `worker-${i + 1}`),
            "--log-level", opts.logLevel ?? "warn",
          ],
          { stdio: ["ignore", "inherit", "inherit"] },
        );
        children.push(child);
      }
      await pool.waitForWorkers(opts.workers, 30_000);
    } catch (err) {
      await pool.close();
      throw err;
    }
    return pool;
  }

  /**
   * Resolves once `n` workers are connected: checked on each workerJoined event (the
   * scheduler has the worker once the event's listeners have run). Rejects when a local
   * worker exits first, or after `timeoutMs`.
   */
  waitForWorkers(n: number, timeoutMs: number): Promise<void> {
    const { events, scheduler } = this.coordinator;
    return new Promise<void>((resolve, reject) => {
      const exits = this.children.map((c) => {
        const onExit = (code: number | null) => settle(new EdgepoolError("E_UNAVAILABLE", `a local worker exited with code ${code} before joining`));
        c.once("exit", onExit);
        return () => c.off("exit", onExit);
      });
      const timer = setTimeout(() => settle(new EdgepoolError("E_TIMEOUT", `only ${scheduler.workers.size} of ${n} local workers joined within ${timeoutMs} ms`)), timeoutMs);
      const off = events.on("workerJoined", () => queueMicrotask(check));
      function settle(err: EdgepoolError | null): void {
        clearTimeout(timer);
        off();
        for (const offExit of exits) offExit();
        if (err) reject(err);
        else resolve();
      }
      function check(): void {
        if (scheduler.workers.size >= n) settle(null);
      }
      const dead = this.children.find((c) => c.exitCode !== null);
      if (dead) settle(new EdgepoolError("E_UNAVAILABLE", `a local worker exited with code ${dead.exitCode} before joining`));
      else check();
    });
  }

  /** Stops workers (SIGTERM, then SIGKILL after 5 s), the coordinator, and removes temp files. */
  async close(): Promise<void> {
    await Promise.all(
      this.children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            const t = setTimeout(() => c.kill("SIGKILL"), 5000);
            c.once("exit", () => {
              clearTimeout(t);
              resolve();
            });
            c.kill("SIGTERM");
          }),
      ),
    );
    await this.coordinator.close();
    await rm(this.dir, { recursive: true, force: true });
  }
}
