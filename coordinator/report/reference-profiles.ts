/**
 * The reference figures the report sets beside its own measurements: H100 peaks and MLPerf
 * results, phone tiers, fleet size, availability, throttling, redundancy, network. Every
 * figure carries its value, unit, kind (sourced, assumed or measured) and source (a citation,
 * the reasoning behind an assumption, or the command that measured it).
 *
 * Defaults come from CLAIM.md. A JSON file may replace any subset (deep-merged) and
 * `--set dotted.path=number` overrides replace single values; either way the figure then
 * counts as an assumption unless the file names its own kind and source.
 *
 * This module loads and lists them and re-exports the rest: the schema is in profile-schema.ts,
 * the defaults (a table) in default-profiles.ts.
 */
import { readFile } from "node:fs/promises";
import path from "node:path";
import { EdgepoolError } from "../../shared/errors.js";
import { DEFAULT_PROFILES } from "./default-profiles.js";
import { type Figure, FigureSchema, ProfilesSchema, type Profiles } from "./profile-schema.js";

export { DEFAULT_PROFILES } from "./default-profiles.js";
export { type Figure, FigureSchema, type Profiles, ProfilesSchema } from "./profile-schema.js";

function isFigure(v: unknown): v is Figure {
  return typeof v === "object" && v !== null && "value" in v && "unit" in v && "kind" in v;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Every figure in a profile set, as [dotted path, figure], in declaration order. */
export function listFigures(p: Profiles): Array<[string, Figure]> {
  const out: Array<[string, Figure]> = [];
  const walk = (node: unknown, prefix: string): void => {
    if (isFigure(node)) {
      out.push([prefix, node]);
      return;
    }
    if (!isRecord(node)) return;
    for (const [k, v] of Object.entries(node)) walk(v, prefix ? `${prefix}.${k}` : k);
  };
  walk(p, "");
  return out;
}

/** Valid figure paths that start with the deepest existing prefix of `bad`. */
function pathsNear(bad: string): string[] {
  const all = listFigures(DEFAULT_PROFILES).map(([p]) => p);
  const parts = bad.split(".");
  for (let n = parts.length - 1; n > 0; n--) {
    const prefix = parts.slice(0, n).join(".") + ".";
    const near = all.filter((p) => p.startsWith(prefix));
    if (near.length > 0) return near;
  }
  return [...new Set(all.map((p) => p.split(".")[0] ?? p))];
}

function unknownPath(where: string, bad: string): EdgepoolError {
  return new EdgepoolError("E_CONFIG", `${where}: unknown figure "${bad}"; valid here: ${pathsNear(bad).join(", ")}`);
}

function cloneProfiles(p: Profiles): Profiles {
  return structuredClone(p);
}

/** Finds the figure at a dotted path in `root`, or undefined. */
function figureAt(root: Profiles, dotted: string): Figure | undefined {
  let node: unknown = root;
  for (const part of dotted.split(".")) {
    if (!isRecord(node) || isFigure(node) || !Object.hasOwn(node, part)) return undefined;
    node = node[part];
  }
  return isFigure(node) ? node : undefined;
}

/** Merges a parsed profiles file into `target`, naming the first bad key it meets. */
function mergeFile(target: Profiles, file: unknown, label: string): void {
  if (!isRecord(file)) throw new EdgepoolError("E_CONFIG", `${label}: expected a JSON object of figures`);
  const walk = (node: Record<string, unknown>, prefix: string): void => {
    for (const [k, v] of Object.entries(node)) {
      const dotted = prefix ? `${prefix}.${k}` : k;
      const fig = figureAt(target, dotted);
      if (fig) {
        if (typeof v === "number") {
          if (!Number.isFinite(v)) throw new EdgepoolError("E_CONFIG", `${label}: "${dotted}" must be a finite number`);
          Object.assign(fig, { value: v, kind: "assumed", source: `overridden by ${label}` });
          continue;
        }
        const parsed = FigureSchema.partial().strict().safeParse(v);
        if (!parsed.success) {
          const issue = parsed.error.issues[0];
          const at = issue && issue.path.length > 0 ? `${dotted}.${issue.path.join(".")}` : dotted;
          throw new EdgepoolError("E_CONFIG", `${label}: "${at}": ${issue?.message ?? "invalid figure"} (give a number or { value, unit, kind, source })`);
        }
        const f = parsed.data;
        if (f.value !== undefined) {
          fig.value = f.value;
          fig.kind = f.kind ?? "assumed";
          fig.source = f.source ?? `overridden by ${label}`;
        } else {
          if (f.kind !== undefined) fig.kind = f.kind;
          if (f.source !== undefined) fig.source = f.source;
        }
        if (f.unit !== undefined) fig.unit = f.unit;
        continue;
      }
      const isGroup = listFigures(target).some(([p]) => p.startsWith(`${dotted}.`));
      if (!isGroup) throw unknownPath(label, dotted);
      if (!isRecord(v)) throw new EdgepoolError("E_CONFIG", `${label}: "${dotted}" is a group of figures; give an object`);
      walk(v, dotted);
    }
  };
  walk(file, "");
}

/** Applies one "dotted.path=number" override to `target`. */
function applyOverride(target: Profiles, spec: string): void {
  const eq = spec.indexOf("=");
  if (eq <= 0) throw new EdgepoolError("E_CONFIG", `override "${spec}": expected dotted.path=number, e.g. fleet.devices=2e9`);
  const key = spec.slice(0, eq).trim();
  const raw = spec.slice(eq + 1).trim();
  const fig = figureAt(target, key);
  if (!fig) throw unknownPath(`override "${spec}"`, key);
  const value = raw === "" ? Number.NaN : Number(raw);
  if (!Number.isFinite(value)) throw new EdgepoolError("E_CONFIG", `override "${spec}": "${raw}" is not a number (for ${key}, in ${fig.unit})`);
  Object.assign(fig, { value, kind: "assumed", source: "overridden on the command line" });
}

function validate(p: Profiles, label: string): Profiles {
  const parsed = ProfilesSchema.safeParse(p);
  if (parsed.success) return parsed.data;
  const msgs = parsed.error.issues.map((i) => {
    const at = i.path.filter((x) => x !== "value").join(".");
    return `${at}: ${i.message}`;
  });
  throw new EdgepoolError("E_CONFIG", `${label}: ${msgs.join("; ")}`);
}

/**
 * The reference figures: defaults, then a JSON file (any subset, deep-merged), then
 * "dotted.path=number" overrides in order. Throws E_CONFIG naming the bad key.
 */
export async function loadProfiles(opts: { file?: string; overrides?: string[] } = {}): Promise<Profiles> {
  const p = cloneProfiles(DEFAULT_PROFILES);
  if (opts.file !== undefined) {
    const label = path.basename(opts.file);
    let text: string;
    try {
      text = await readFile(opts.file, "utf8");
    } catch (err) {
      throw new EdgepoolError("E_CONFIG", `cannot read profiles file ${opts.file}: ${(err as Error).message}`, { cause: err });
    }
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch (err) {
      throw new EdgepoolError("E_CONFIG", `profiles file ${opts.file} is not valid JSON: ${(err as Error).message}`, { cause: err });
    }
    mergeFile(p, json, label);
    validate(p, label);
  }
  for (const o of opts.overrides ?? []) applyOverride(p, o);
  return validate(p, "reference figures");
}

/** The same as loadProfiles, for callers that already hold the parsed file. */
export function profilesFrom(opts: { fileJson?: unknown; fileLabel?: string; overrides?: string[] } = {}): Profiles {
  const p = cloneProfiles(DEFAULT_PROFILES);
  if (opts.fileJson !== undefined) {
    const label = opts.fileLabel ?? "profiles file";
    mergeFile(p, opts.fileJson, label);
    validate(p, label);
  }
  for (const o of opts.overrides ?? []) applyOverride(p, o);
  return validate(p, "reference figures");
}
