/**
 * What report.md is built from: the output being assembled (Markdown lines, and SVG charts by
 * file name), Markdown tables, and the number formats of their cells.
 */

/** The report being built; each section appends to both. */
export interface ReportOut {
  md: string[];
  /** File name (e.g. "tornado.svg") to SVG text. */
  charts: Record<string, string>;
}

/** Three significant digits; "n/a" for a figure that could not be computed. */
export const g3 = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(3)).toString() : "n/a");
/** A fraction as a whole percentage; "n/a" when unknown. */
export const pct = (x: number | null) => (x === null || !Number.isFinite(x) ? "n/a" : `${(x * 100).toFixed(0)}%`);
// A pipe or a newline inside a cell would end the cell or the row.
const cell = (s: string) => s.replace(/\|/g, "\\|").replace(/\n/g, " ");

/** A Markdown table; cells are escaped. */
export function table(head: string[], rows: string[][]): string {
  return [`| ${head.join(" | ")} |`, `| ${head.map(() => "---").join(" | ")} |`, ...rows.map((r) => `| ${r.map(cell).join(" | ")} |`)].join("\n");
}

/** A reference figure's value: exponent form when very large or small, else up to 6 digits. */
export function fmtValue(v: number): string {
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2).replace(/\.?0+e/, "e").replace("e+", "e");
  return v.toLocaleString("en-US", { maximumSignificantDigits: 6 });
}
