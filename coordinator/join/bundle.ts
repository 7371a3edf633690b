/**
 * The browser worker's scripts, built from the repository: esbuild bundles
 * worker/browser/page.ts and worker/browser/engine.ts (with the shared/ code they import)
 * into worker/browser/dist/ (git-ignored). A coordinator starts a build when the bundle is
 * missing or older than its sources, so `npm ci && npm start` on a fresh clone serves /join
 * with no separate build step; otherwise it only checks the sources' sizes and mtimes
 * against the stamp the last build left.
 *
 * Several processes may share one checkout (tests, a demo), so every file is written under a
 * temporary name and renamed into place, and the stamp goes last: a reader sees a whole old
 * bundle or a whole new one. The bytes are served from memory.
 */
import { mkdir, readFile, rename, stat, unlink, writeFile } from "node:fs/promises";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { EdgepoolError, toEdgepoolError } from "../../shared/errors.js";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** The browser worker's sources. */
export const BROWSER_SRC = path.join(ROOT, "worker", "browser");
/** Where the bundle goes (git-ignored). */
export const BROWSER_DIST = path.join(BROWSER_SRC, "dist");
const ENTRIES = { page: "page.ts", engine: "engine.ts" } as const;
const STAMP = "build.json";

const StampSchema = z.object({
  esbuild: z.string(),
  builtAt: z.number(),
  /** Every file esbuild read (relative to the repository root), with its size and mtime then. */
  inputs: z.record(z.string(), z.object({ size: z.number(), mtimeMs: z.number() })),
  outputs: z.array(z.string()),
});
type Stamp = z.infer<typeof StampSchema>;

export interface JoinBundle {
  /** "page.js" and "engine.js". */
  files: ReadonlyMap<string, Buffer>;
  /** True when this process ran esbuild; false when the bundle on disk was current. */
  built: boolean;
  ms: number;
}

/** The bundle, from disk when current, built otherwise. Throws E_INTERNAL naming the build error. */
export async function loadJoinBundle(): Promise<JoinBundle> {
  const started = performance.now();
  const cached = await readCurrent();
  if (cached) return { files: cached, built: false, ms: Math.round(performance.now() - started) };
  const files = await build();
  return { files, built: true, ms: Math.round(performance.now() - started) };
}

async function readCurrent(): Promise<Map<string, Buffer> | null> {
  let stamp: Stamp;
  try {
    stamp = StampSchema.parse(JSON.parse(await readFile(path.join(BROWSER_DIST, STAMP), "utf8")));
  } catch {
    return null;
  }
  const { version } = await import("esbuild").catch(() => ({ version: stamp.esbuild }));
  if (version !== stamp.esbuild) return null;
  for (const [file, was] of Object.entries(stamp.inputs)) {
    try {
      const s = await stat(path.join(ROOT, file));
      if (s.size !== was.size || s.mtimeMs !== was.mtimeMs) return null;
    } catch {
      return null;
    }
  }
  const files = new Map<string, Buffer>();
  try {
    for (const name of stamp.outputs) files.set(name, await readFile(path.join(BROWSER_DIST, name)));
  } catch {
    return null;
  }
  return files.has("page.js") && files.has("engine.js") ? files : null;
}

async function build(): Promise<Map<string, Buffer>> {
  let esbuild: typeof import("esbuild");
  try {
    esbuild = await import("esbuild");
  } catch (err) {
    throw new EdgepoolError("E_INTERNAL", `cannot build the join page: esbuild is not installed (${toEdgepoolError(err).message}); run npm install`, { cause: err });
  }
  let result: Awaited<ReturnType<typeof esbuild.build>>;
  try {
    result = await esbuild.build({
      absWorkingDir: ROOT,
      entryPoints: Object.fromEntries(Object.entries(ENTRIES).map(([k, v]) => [k, path.join(BROWSER_SRC, v)])),
      outdir: BROWSER_DIST,
      bundle: true,
      format: "esm",
      platform: "browser",
      // Module workers and top-level await: Chrome/Edge 91+, Safari 16.4+, Firefox 114+.
      target: ["es2022"],
      minify: true,
      legalComments: "none",
      write: false,
      metafile: true,
      logLevel: "silent",
    });
  } catch (err) {
    const errors = (err as { errors?: Array<{ text: string; location?: { file: string; line: number } | null }> }).errors ?? [];
    const first = errors[0];
    const where = first?.location ? ` (${first.location.file}:${first.location.line})` : "";
    throw new EdgepoolError("E_INTERNAL", `cannot build the join page: ${first?.text ?? toEdgepoolError(err).message}${where}`, { cause: err });
  }
  const files = new Map<string, Buffer>();
  for (const f of result.outputFiles ?? []) files.set(path.basename(f.path), Buffer.from(f.contents));
  const inputs: Stamp["inputs"] = {};
  for (const file of Object.keys(result.metafile?.inputs ?? {})) {
    // "(disabled):fs" and the like: modules a package's "browser" field turns off.
    if (/^\([a-z]+\):/.test(file)) continue;
    const s = await stat(path.join(ROOT, file));
    inputs[file] = { size: s.size, mtimeMs: s.mtimeMs };
  }
  const stamp: Stamp = { esbuild: esbuild.version, builtAt: Date.now(), inputs, outputs: [...files.keys()] };
  try {
    await mkdir(BROWSER_DIST, { recursive: true });
    for (const [name, bytes] of files) await writeAtomically(path.join(BROWSER_DIST, name), bytes);
    await writeAtomically(path.join(BROWSER_DIST, STAMP), Buffer.from(JSON.stringify(stamp, null, 1)));
  } catch {
    // A read-only checkout still serves the page, from memory; the next start builds again.
  }
  return files;
}

async function writeAtomically(file: string, bytes: Buffer): Promise<void> {
  const tmp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
  try {
    await writeFile(tmp, bytes);
    await rename(tmp, file);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}
