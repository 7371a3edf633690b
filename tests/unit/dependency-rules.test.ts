/**
 * The import rules in .dependency-cruiser.cjs (run on the real tree by `npm run depcheck`)
 * are checked here against a small tree that breaks each of them once, so a rule that stopped
 * matching (a renamed folder, a typo in a pattern) fails this test instead of passing silently.
 */
import { execFile } from "node:child_process";
import { mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { z } from "zod";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const DEPCRUISE = path.join(ROOT, "node_modules", ".bin", "depcruise");

const FIXTURE: Record<string, string> = {
  "tsconfig.json": JSON.stringify({ compilerOptions: { module: "NodeNext", moduleResolution: "NodeNext", allowJs: false } }),
  "shared/errors.ts": "export const E = 1;\n",
  "shared/node/logger.ts": 'import { readFileSync } from "node:fs";\nexport const read = readFileSync;\n',
  // browser code reaching for Node: a built-in and shared/node
  "worker/browser/page.ts": 'import { join } from "node:path";\nimport { read } from "../../shared/node/logger.js";\nexport const x = [join, read];\n',
  // worker/core is browser code too
  "worker/core/session.ts": 'import { read } from "../../shared/node/logger.js";\nimport { WebSocket } from "ws";\nimport { z } from "zod";\nexport const y = [read, WebSocket, z];\n',
  // shared importing the coordinator
  "shared/tensor/tensor.ts": 'import { a } from "../../coordinator/jobs/a.js";\nexport const t = a;\n',
  // a cycle inside the coordinator, and the coordinator importing the worker
  "coordinator/jobs/a.ts": 'import { b } from "./b.js";\nexport const a = 1 + b;\n',
  "coordinator/jobs/b.ts": 'import { a } from "./a.js";\nimport { y } from "../../worker/core/session.js";\nexport const b = a + (y ? 1 : 0);\n',
  // the client SDK importing the server
  "coordinator/client/client.ts": 'import { a } from "../jobs/a.js";\nexport const c = a;\n',
  // the worker importing the coordinator
  "worker/daemon.ts": 'import { a } from "../coordinator/jobs/a.js";\nexport const d = a;\n',
  // the coordinator importing the harness, the harness importing tests
  "harness/procs.ts": 'import { p } from "../tests/harness/procs.js";\nexport const h = p;\n',
  "coordinator/jobs/c.ts": 'import { h } from "../../harness/procs.js";\nexport const c = h;\n',
  // bench importing tests, bin importing bench
  "tests/harness/procs.ts": "export const p = 1;\n",
  "bench/run.ts": 'import { p } from "../tests/harness/procs.js";\nexport const r = p;\n',
  "bin/cli.ts": 'import { r } from "../bench/run.js";\nexport const cli = r;\n',
};

const ReportSchema = z.object({
  summary: z.object({
    violations: z.array(z.object({ from: z.string(), to: z.string(), rule: z.object({ name: z.string() }) })),
  }),
});

let dir = "";

beforeAll(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), "edgepool-deps-"));
  for (const [file, text] of Object.entries(FIXTURE)) {
    await mkdir(path.dirname(path.join(dir, file)), { recursive: true });
    await writeFile(path.join(dir, file), text);
  }
  // Packages resolve as they do in the project.
  await symlink(path.join(ROOT, "node_modules"), path.join(dir, "node_modules"));
});

afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

async function violations(): Promise<Array<{ from: string; to: string; rule: string }>> {
  const args = ["shared", "coordinator", "worker", "harness", "bin", "bench", "tests", "--config", path.join(ROOT, ".dependency-cruiser.cjs"), "--output-type", "json"];
  // depcruise exits non-zero when it finds violations; the report is on stdout either way.
  const out = await promisify(execFile)(DEPCRUISE, args, { cwd: dir, maxBuffer: 16 * 2 ** 20 }).catch((err: { stdout?: string }) => ({ stdout: err.stdout ?? "" }));
  return ReportSchema.parse(JSON.parse(out.stdout)).summary.violations.map((v) => ({ from: v.from, to: v.to, rule: v.rule.name }));
}

describe("the dependency rules", () => {
  it("flag each kind of forbidden import in a tree that has one of each", async () => {
    const found = await violations();
    const has = (rule: string, from: string, to: string) => found.some((v) => v.rule === rule && v.from === from && v.to.includes(to));
    expect(has("browser-no-node", "worker/browser/page.ts", "path")).toBe(true);
    expect(has("browser-no-shared-node", "worker/browser/page.ts", "shared/node/logger.ts")).toBe(true);
    expect(has("browser-no-shared-node", "worker/core/session.ts", "shared/node/logger.ts")).toBe(true);
    expect(has("browser-packages", "worker/core/session.ts", "node_modules/ws/")).toBe(true);
    expect(has("browser-packages", "worker/core/session.ts", "node_modules/zod/")).toBe(false);
    expect(has("shared-is-the-base", "shared/tensor/tensor.ts", "coordinator/jobs/a.ts")).toBe(true);
    expect(has("no-cycles", "coordinator/jobs/a.ts", "coordinator/jobs/b.ts") || has("no-cycles", "coordinator/jobs/b.ts", "coordinator/jobs/a.ts")).toBe(true);
    expect(has("coordinator-not-worker", "coordinator/jobs/b.ts", "worker/core/session.ts")).toBe(true);
    expect(has("client-is-a-client", "coordinator/client/client.ts", "coordinator/jobs/a.ts")).toBe(true);
    expect(has("worker-not-coordinator", "worker/daemon.ts", "coordinator/jobs/a.ts")).toBe(true);
    expect(has("bench-not-bin-or-tests", "bench/run.ts", "tests/harness/procs.ts")).toBe(true);
    expect(has("bin-not-bench-or-tests", "bin/cli.ts", "bench/run.ts")).toBe(true);
    expect(has("harness-from-outside", "harness/procs.ts", "tests/harness/procs.ts")).toBe(true);
    expect(has("coordinator-not-worker", "coordinator/jobs/c.ts", "harness/procs.ts")).toBe(true);
    // shared/node may use Node; nothing else in the fixture is forbidden
    expect(found.some((v) => v.from === "shared/node/logger.ts")).toBe(false);
  });
});
