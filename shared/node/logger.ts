/** pino logger factory: JSON lines by default, pretty output on request. */
import { pino, type Logger, type LevelWithSilent } from "pino";

export type { Logger };

export interface LoggerOptions {
  name: string;
  level?: LevelWithSilent;
  format?: "json" | "pretty";
  /** Write to stderr (fd 2) instead of stdout; CLIs that print results on stdout use this. */
  stderr?: boolean;
  /** Write JSON lines to this file instead (created or appended). */
  file?: string;
}

export function createLogger(opts: LoggerOptions): Logger {
  const level = opts.level ?? "info";
  const fd = opts.stderr ? 2 : 1;
  if (opts.format === "pretty") {
    return pino({
      name: opts.name,
      level,
      transport: { target: "pino-pretty", options: { destination: fd, colorize: false, translateTime: "SYS:HH:MM:ss.l" } },
    });
  }
  const dest = opts.file ? pino.destination({ dest: opts.file, mkdir: true, sync: false }) : pino.destination({ fd, sync: false });
  return pino({ name: opts.name, level }, dest);
}

/** Flushes buffered log lines, but never waits long for a stuck destination. */
export function flushLogs(log: Logger, timeoutMs = 1000): Promise<void> {
  return new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    timer.unref();
    try {
      log.flush(() => {
        clearTimeout(timer);
        resolve();
      });
    } catch {
      clearTimeout(timer);
      resolve();
    }
  });
}
