// Vega-Lite spec → static SVG (Vega's headless view, no canvas, no script in the page), and the
// HTML page around the charts: self-contained, nothing fetched from the network.

import type { Chart } from "./charts.js";

/** Vega and Vega-Lite load when a page is drawn, not whenever a command that writes a report starts. */
export async function renderSvg(chart: Chart): Promise<string> {
  const [vega, { compile }] = await Promise.all([import("vega"), import("vega-lite")]);
  const view = new vega.View(vega.parse(compile(chart.spec).spec), { renderer: "none" });
  try {
    return await view.toSVG();
  } finally {
    view.finalize();
  }
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

export interface Section {
  title: string;
  /** Trusted HTML built by this module's helpers (every user value escaped). */
  html: string;
}

/** A table cell: text escaped, numbers formatted, or `{ html }` already built by these helpers. */
export type Cell = string | number | null | { html: string };

export function cell(v: Cell): string {
  if (v !== null && typeof v === "object") return `<td>${v.html}</td>`;
  return `<td>${v === null ? "—" : escapeHtml(typeof v === "number" ? formatNumber(v) : v)}</td>`;
}

/** A table; an empty `head` gives one without a header row. */
export function table(head: readonly string[], rows: ReadonlyArray<ReadonlyArray<Cell>>): string {
  const thead = head.length > 0 ? `<thead><tr>${head.map((h) => `<th>${escapeHtml(h)}</th>`).join("")}</tr></thead>` : "";
  return `<table>${thead}<tbody>${rows.map((r) => `<tr>${r.map(cell).join("")}</tr>`).join("")}</tbody></table>`;
}

export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  if (Number.isInteger(v)) return v.toLocaleString("en-US");
  return Math.abs(v) >= 100 ? v.toFixed(1) : Math.abs(v) >= 1 ? v.toFixed(4) : v.toPrecision(4);
}

const STYLE = `
body{font:14px/1.45 system-ui,sans-serif;margin:2em auto;max-width:1100px;padding:0 1em;color:#222}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.8em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ddd;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f5f5f5}code{background:#f3f3f3;padding:0 .25em}figure{margin:1em 0}figcaption{font-weight:600;margin-bottom:.3em}
.muted{color:#666}`;

/** A whole page: title, a subtitle line, sections, then one figure per chart (SVG inline). */
export async function renderPage(title: string, subtitle: string, sections: readonly Section[], charts: ReadonlyArray<Chart | null>): Promise<string> {
  const figures: string[] = [];
  for (const chart of charts) {
    if (!chart) continue;
    figures.push(`<figure data-chart="${escapeHtml(chart.id)}"><figcaption>${escapeHtml(chart.title)}</figcaption>${await renderSvg(chart)}</figure>`);
  }
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>${escapeHtml(title)}</title><style>${STYLE}</style></head>
<body><h1>${escapeHtml(title)}</h1><p class="muted">${escapeHtml(subtitle)}</p>
${sections.map((s) => `<h2>${escapeHtml(s.title)}</h2>\n${s.html}`).join("\n")}
${figures.length > 0 ? `<h2>Charts</h2>\n${figures.join("\n")}` : ""}
</body></html>
`;
}
