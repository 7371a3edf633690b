/**
 * worker/core runs in browsers too: nothing it imports, directly or through shared/, may be
 * Node-only. Follows every relative import from worker/core/*.ts and checks each bare one.
 */
import { readFileSync, readdirSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CORE = path.join(ROOT, "worker", "core");
/** Packages that work in a browser. */
const BROWSER_SAFE = new Set(["zod"]);

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+"([^"]+)"|(?:^|\n)\s*import\s+"([^"]+)"|import\(\s*"([^"]+)"\s*\)/g;

function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8");
  return [...text.matchAll(IMPORT)].map((m) => (m[1] ?? m[2] ?? m[3])!);
}

/** Every module reachable from `entries` by relative imports, with the bare imports each makes. */
function walk(entries: string[]): Map<string, string[]> {
  const seen = new Map<string, string[]>();
  const todo = [...entries];
  while (todo.length > 0) {
    const file = todo.pop()!;
    if (seen.has(file)) continue;
    const bare: string[] = [];
    seen.set(file, bare);
    for (const spec of importsOf(file)) {
      if (spec.startsWith(".")) todo.push(path.resolve(path.dirname(file), spec.replace(/\.js$/, ".ts")));
      else bare.push(spec);
    }
  }
  return seen;
}

describe("worker/core", () => {
  it("imports nothing Node-only, directly or through what it imports", () => {
    const entries = readdirSync(CORE).filter((f) => f.endsWith(".ts")).map((f) => path.join(CORE, f));
    expect(entries.map((f) => path.basename(f))).toContain("session.ts");
    const modules = walk(entries);
    const problems: string[] = [];
    for (const [file, bare] of modules) {
      const rel = path.relative(ROOT, file);
      if (rel.startsWith(`shared${path.sep}node${path.sep}`)) problems.push(`${rel} is under shared/node`);
      if (!rel.startsWith(`shared${path.sep}`) && !rel.startsWith(`worker${path.sep}core${path.sep}`)) problems.push(`${rel} is outside shared/ and worker/core/`);
      for (const spec of bare) if (!BROWSER_SAFE.has(spec)) problems.push(`${rel} imports ${spec}`);
    }
    expect(problems).toEqual([]);
    // The walk did reach shared/ (a broken import pattern would find nothing and pass).
    expect([...modules.keys()].some((f) => f.endsWith(path.join("shared", "protocol", "messages.ts")))).toBe(true);
  });
});
