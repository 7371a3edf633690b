/**
 * Dependency-free SVG 1.1 charts for the report: horizontal bars, a tornado, and a line
 * chart. Each returns a standalone document (XML declaration, xmlns, viewBox, width and
 * height) with escaped text and no external resources.
 */

const FONT = "font-family=\"Helvetica, Arial, sans-serif\"";
const COLORS = ["#3b6ea8", "#d9822b", "#5b9a5b", "#b04a5a", "#7a5ea8", "#888888"] as const;

/** Escapes text for XML content and attribute values. */
export function escapeXml(s: string): string {
  return s
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

const n2 = (x: number) => (Number.isFinite(x) ? Number(x.toFixed(2)).toString() : "0");

/** Compact value label: 1.2e+6 style avoided, 3 significant digits with k/M/B suffixes. */
export function shortNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  const a = Math.abs(x);
  const p = (v: number) => Number(v.toPrecision(3)).toString();
  if (a >= 1e12) return `${p(x / 1e12)}T`;
  if (a >= 1e9) return `${p(x / 1e9)}B`;
  if (a >= 1e6) return `${p(x / 1e6)}M`;
  if (a >= 1e4) return `${p(x / 1e3)}k`;
  if (a === 0) return "0";
  return p(x);
}

function doc(width: number, height: number, title: string, body: string[]): string {
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<svg xmlns="http://www.w3.org/2000/svg" version="1.1" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<title>${escapeXml(title)}</title>`,
    `<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="${width / 2}" y="24" text-anchor="middle" ${FONT} font-size="16" font-weight="bold" fill="#222222">${escapeXml(title)}</text>`,
    ...body,
    `</svg>`,
    "",
  ].join("\n");
}

function text(x: number, y: number, s: string, opts: { anchor?: "start" | "middle" | "end"; size?: number; fill?: string } = {}): string {
  return `<text x="${n2(x)}" y="${n2(y)}" text-anchor="${opts.anchor ?? "start"}" ${FONT} font-size="${opts.size ?? 12}" fill="${opts.fill ?? "#222222"}">${escapeXml(s)}</text>`;
}

export interface Bar {
  label: string;
  value: number;
  /** Shown after the bar instead of the number. */
  valueLabel?: string;
}

/** Horizontal bar chart, one row per bar, with labels left and values right of each bar. */
export function barChart(title: string, bars: readonly Bar[], opts: { unit?: string; width?: number } = {}): string {
  const width = opts.width ?? 720;
  const labelW = Math.min(300, Math.max(100, ...bars.map((b) => b.label.length * 7 + 16)));
  const valueW = 110;
  const rowH = 26;
  const top = 44;
  const height = top + Math.max(1, bars.length) * rowH + (opts.unit ? 36 : 16);
  const plotW = width - labelW - valueW - 10;
  const max = Math.max(0, ...bars.map((b) => (Number.isFinite(b.value) ? b.value : 0)));
  const body: string[] = [];
  if (bars.length === 0) body.push(text(width / 2, top + 16, "no data", { anchor: "middle", fill: "#666666" }));
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    const v = Number.isFinite(b.value) && b.value > 0 ? b.value : 0;
    const w = max > 0 ? (v / max) * plotW : 0;
    body.push(text(labelW - 8, y + 17, b.label, { anchor: "end" }));
    body.push(`<rect x="${labelW}" y="${y + 4}" width="${n2(Math.max(w, 0.5))}" height="${rowH - 8}" fill="${COLORS[i % COLORS.length]}"/>`);
    body.push(text(labelW + w + 6, y + 17, b.valueLabel ?? shortNumber(b.value)));
  });
  if (opts.unit) body.push(text(labelW, height - 12, opts.unit, { fill: "#555555" }));
  return doc(width, height, title, body);
}

export interface TornadoRow {
  label: string;
  low: number;
  high: number;
  lowLabel: string;
  highLabel: string;
}

/**
 * Tornado chart: for each factor a bar from the answer at its low bound to the answer at its
 * high bound, around a vertical baseline. Log scale by default, since the factors multiply.
 */
export function tornadoChart(title: string, baseline: number, rows: readonly TornadoRow[], opts: { unit?: string; log?: boolean; width?: number } = {}): string {
  const width = opts.width ?? 820;
  const labelW = Math.min(300, Math.max(120, ...rows.map((r) => r.label.length * 7 + 16)));
  const pad = 90;
  const rowH = 30;
  const top = 56;
  const height = top + Math.max(1, rows.length) * rowH + 48;
  const values = [baseline, ...rows.flatMap((r) => [r.low, r.high])].filter((v) => Number.isFinite(v) && (!opts.log || v > 0));
  const useLog = (opts.log ?? true) && values.every((v) => v > 0);
  const f = (v: number) => (useLog ? Math.log10(v) : v);
  let lo = Math.min(...values.map(f));
  let hi = Math.max(...values.map(f));
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) {
    lo = 0;
    hi = 1;
  }
  if (hi - lo < 1e-9) {
    lo -= 0.5;
    hi += 0.5;
  }
  const x0 = labelW + pad;
  const plotW = width - x0 - pad;
  const sx = (v: number) => x0 + ((f(v) - lo) / (hi - lo)) * plotW;
  const body: string[] = [];
  const bx = sx(baseline);
  rows.forEach((r, i) => {
    const y = top + i * rowH;
    const a = sx(r.low);
    const b = sx(r.high);
    body.push(text(labelW - 8, y + 19, r.label, { anchor: "end" }));
    // Answer at the factor's low bound in orange, at its high bound in blue.
    body.push(`<rect x="${n2(Math.min(a, bx))}" y="${y + 5}" width="${n2(Math.max(Math.abs(a - bx), 1))}" height="${rowH - 10}" fill="#d9822b"/>`);
    body.push(`<rect x="${n2(Math.min(b, bx))}" y="${y + 5}" width="${n2(Math.max(Math.abs(b - bx), 1))}" height="${rowH - 10}" fill="#3b6ea8" fill-opacity="0.85"/>`);
    const left = Math.min(a, b);
    const right = Math.max(a, b);
    const leftLabel = a <= b ? `${r.lowLabel}: ${shortNumber(r.low)}` : `${r.highLabel}: ${shortNumber(r.high)}`;
    const rightLabel = a <= b ? `${r.highLabel}: ${shortNumber(r.high)}` : `${r.lowLabel}: ${shortNumber(r.low)}`;
    body.push(text(Math.min(left, bx) - 4, y + 19, leftLabel, { anchor: "end", size: 10, fill: "#444444" }));
    body.push(text(Math.max(right, bx) + 4, y + 19, rightLabel, { size: 10, fill: "#444444" }));
  });
  const bottom = top + Math.max(1, rows.length) * rowH;
  body.push(`<line x1="${n2(bx)}" y1="${top - 6}" x2="${n2(bx)}" y2="${bottom + 4}" stroke="#222222" stroke-width="1.5"/>`);
  body.push(text(bx, top - 10, `baseline ${shortNumber(baseline)}`, { anchor: "middle", size: 11 }));
  body.push(
    text(x0, height - 14, `${opts.unit ?? ""}${useLog ? " (log scale)" : ""}; orange: factor at its low bound, blue: at its high bound`, {
      size: 11,
      fill: "#555555",
    }),
  );
  return doc(width, height, title, body);
}

export interface Series {
  name: string;
  points: ReadonlyArray<readonly [number, number]>;
}

/** Line chart of one or more series (e.g. throughput against workers). */
export function lineChart(title: string, series: readonly Series[], opts: { xLabel?: string; yLabel?: string; width?: number; height?: number } = {}): string {
  const width = opts.width ?? 720;
  const height = opts.height ?? 420;
  const left = 70;
  const right = 150;
  const top = 44;
  const bottom = 56;
  const pts = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
  const xmax = Math.max(1, ...pts.map(([x]) => x));
  const xmin = Math.min(0, ...pts.map(([x]) => x));
  const ymax = Math.max(1e-9, ...pts.map(([, y]) => y)) * 1.1;
  const plotW = width - left - right;
  const plotH = height - top - bottom;
  const sx = (x: number) => left + ((x - xmin) / (xmax - xmin || 1)) * plotW;
  const sy = (y: number) => top + plotH - (y / ymax) * plotH;
  const body: string[] = [];
  body.push(`<line x1="${left}" y1="${top + plotH}" x2="${left + plotW}" y2="${top + plotH}" stroke="#222222"/>`);
  body.push(`<line x1="${left}" y1="${top}" x2="${left}" y2="${top + plotH}" stroke="#222222"/>`);
  for (let i = 0; i <= 4; i++) {
    const yv = (ymax / 4) * i;
    const y = sy(yv);
    body.push(`<line x1="${left}" y1="${n2(y)}" x2="${left + plotW}" y2="${n2(y)}" stroke="#dddddd"/>`);
    body.push(text(left - 6, y + 4, shortNumber(yv), { anchor: "end", size: 10 }));
    const xv = xmin + ((xmax - xmin) / 4) * i;
    body.push(text(sx(xv), top + plotH + 16, shortNumber(xv), { anchor: "middle", size: 10 }));
  }
  series.forEach((s, i) => {
    const color = COLORS[i % COLORS.length] ?? "#3b6ea8";
    const ps = s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (ps.length > 0) {
      const d = ps.map(([x, y], j) => `${j === 0 ? "M" : "L"}${n2(sx(x))},${n2(sy(y))}`).join(" ");
      body.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="2"/>`);
      for (const [x, y] of ps) body.push(`<circle cx="${n2(sx(x))}" cy="${n2(sy(y))}" r="3" fill="${color}"/>`);
    }
    body.push(`<rect x="${left + plotW + 16}" y="${top + i * 20}" width="12" height="12" fill="${color}"/>`);
    body.push(text(left + plotW + 34, top + i * 20 + 11, s.name, { size: 11 }));
  });
  if (opts.xLabel) body.push(text(left + plotW / 2, height - 14, opts.xLabel, { anchor: "middle" }));
  if (opts.yLabel) {
    body.push(
      `<text x="16" y="${n2(top + plotH / 2)}" text-anchor="middle" ${FONT} font-size="12" fill="#222222" transform="rotate(-90 16 ${n2(top + plotH / 2)})">${escapeXml(opts.yLabel)}</text>`,
    );
  }
  return doc(width, height, title, body);
}
