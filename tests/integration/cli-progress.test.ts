/**
 * What people see from the CLI while a pool works: `submit` draws a progress bar on a
 * terminal (a real pseudo-terminal, from util-linux `script`), writes plain periodic lines
 * when its output is a pipe, and nothing with --quiet; `status --json` describes the pool for
 * scripts; `worker --print-systemd-unit` and EDGEPOOL_* variables configure a worker.
 */
import { spawn } from "node:child_process";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StatusViewSchema } from "../../coordinator/client/client.js";
import { readNpyFile, writeNpyFile } from "../../shared/node/npy-file.js";
import { seededNormal } from "../../shared/onnx/builder.js";
import { BIN, runCli, startPool, startProc, tempDir } from "../../harness/procs.js";

const ROWS = 40_000;

let tmp: Awaited<ReturnType<typeof tempDir>>;
let pool: Awaited<ReturnType<typeof startPool>>;
let xFile: string;

beforeAll(async () => {
  tmp = await tempDir("cli-progress");
  pool = await startPool(2, tmp.dir);
  xFile = path.join(tmp.dir, "x.npy");
  await writeNpyFile(xFile, { dtype: "float32", dims: [ROWS, 64], data: seededNormal(5, ROWS * 64, 1) });
});

afterAll(async () => {
  await pool?.stop();
  await tmp?.remove();
});

function submitArgs(out: string): string[] {
  return ["submit", "--coordinator", pool.url, "--model", "wide-mlp", "--input", `x=${xFile}`, "--out", path.join(tmp.dir, out), "--shard-size", "400"];
}

/** Runs the CLI under a pseudo-terminal; resolves everything the terminal received. */
function runInPty(args: string[]): Promise<{ code: number | null; output: string }> {
  const cmd = [process.execPath, BIN, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
  const child = spawn("script", ["-qfec", cmd, "/dev/null"], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, COLUMNS: "120" } });
  let output = "";
  child.stdout.on("data", (d: Buffer) => (output += d.toString()));
  child.stderr.on("data", (d: Buffer) => (output += d.toString()));
  return new Promise((resolve) => child.once("exit", (code) => resolve({ code, output })));
}

describe("submit progress", () => {
  it("draws a progress bar with rate and ETA on a terminal", async () => {
    const r = await runInPty(submitArgs("out-tty"));
    expect(r.code, r.output).toBe(0);
    const frames = r.output.split(/\r|\u001b\[1G/).filter((f) => f.includes(" samples/s | ETA "));
    expect(frames.length, r.output).toBeGreaterThan(1);
    expect(r.output).toMatch(/\u2588+/); // the bar's filled part
    expect(r.output).toContain(`${ROWS}/${ROWS} samples`);
    expect(r.output).toMatch(/done: 40000 samples in [\d.]+ s/);
    // The bar counts up: the samples shown never go down between redraws.
    const counts = frames.map((f) => Number(/\| (\d+)\/40000 samples/.exec(f)?.[1] ?? NaN)).filter((n) => !Number.isNaN(n));
    expect(counts.length).toBeGreaterThan(1);
    for (let i = 1; i < counts.length; i++) expect(counts[i]!).toBeGreaterThanOrEqual(counts[i - 1]!);
    expect((await readNpyFile(path.join(tmp.dir, "out-tty", "logits.npy"))).dims[0]).toBe(ROWS);
  });

  it("writes plain lines, with no control characters, when stderr is not a terminal", async () => {
    const r = await runCli(submitArgs("out-pipe"));
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stderr.split("\n").filter((l) => /^job \w+: \d+\/40000 samples \(\d+\.\d%\), [\d.]+ samples\/s, ETA /.test(l));
    expect(lines.length, r.stderr).toBeGreaterThanOrEqual(1);
    expect(r.stderr).not.toMatch(/[\r\u001b]/);
    expect(r.stdout).toMatch(/^job \w+ done: 40000 samples/);
  });

  it("prints only the final line with --quiet", async () => {
    const r = await runCli([...submitArgs("out-quiet"), "--quiet"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toBe("");
    expect(r.stdout.trim().split("\n")).toHaveLength(1);
    expect(r.stdout).toMatch(/^job \w+ done: 40000 samples/);
  });
});

describe("status --json", () => {
  it("lists the workers, the jobs and the pool's totals as JSON that parses with the client's schema", async () => {
    const r = await runCli(["status", "--coordinator", pool.url, "--json"]);
    expect(r.code, r.stderr).toBe(0);
    const s = StatusViewSchema.parse(JSON.parse(r.stdout));
    expect(s.workers.map((w) => w.name).sort()).toEqual(["w1", "w2"]);
    expect(s.workers.every((w) => w.platform === process.platform && !w.virtual)).toBe(true);
    const done = s.jobs.filter((j) => j.state === "done");
    expect(done).toHaveLength(3);
    expect(done.every((j) => j.samplesDone === ROWS && j.shardsDone === ROWS / 400)).toBe(true);
    expect(s.throughput.totalSamples).toBe(3 * ROWS);
    expect(s.workers.reduce((n, w) => n + w.samplesDone, 0)).toBe(3 * ROWS);
  });

  it("reads the coordinator from EDGEPOOL_COORDINATOR, and the table names every worker", async () => {
    const p = startProc(["status"], { EDGEPOOL_COORDINATOR: pool.url });
    const code = await new Promise((resolve) => p.child.once("exit", resolve));
    expect(code, p.stderr()).toBe(0);
    expect(p.stdout()).toMatch(/pool: 2 workers/);
    for (const name of ["w1", "w2"]) expect(p.stdout()).toMatch(new RegExp(`^${name}\\s+${process.platform}\\s`, "m"));
  });
});

describe("worker --print-systemd-unit", () => {
  it("prints a unit that runs this worker with the given options", async () => {
    const r = await runCli(["worker", "--coordinator", "http://10.1.2.3:7070", "--name", "kitchen pi", "--max-cpu", "50", "--state-dir", "/var/lib/edgepool", "--print-systemd-unit"]);
    expect(r.code, r.stderr).toBe(0);
    const unit = r.stdout;
    expect(unit).toMatch(/^\[Unit\]\n/);
    expect(unit).toContain("\n[Service]\n");
    expect(unit).toContain("\n[Install]\nWantedBy=multi-user.target\n");
    expect(unit).toContain('Environment="EDGEPOOL_COORDINATOR=ws://10.1.2.3:7070/"');
    expect(unit).toContain('Environment="EDGEPOOL_NAME=kitchen pi"');
    expect(unit).toContain('Environment="EDGEPOOL_MAX_CPU=50"');
    expect(unit).toContain("ReadWritePaths=/var/lib/edgepool");
    expect(unit).toMatch(new RegExp(`\\nExecStart=${process.execPath.replace(/[/.]/g, "\\$&")} --single-threaded-gc \\S+/bin/edgepool\\.js worker\\n`));
  });

  it("refuses a bad option before printing anything", async () => {
    const r = await runCli(["worker", "--coordinator", "10.1.2.3:7070", "--print-systemd-unit"]);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/has no scheme; give it as ws:\/\/host:port/);
  });
});
