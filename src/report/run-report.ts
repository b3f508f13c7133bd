// report.json + report.html for one command's run: written into its output folder, or beside a
// single output file as <file>.report.json / <file>.report.html (a GGUF file has no folder to hold them).

import fs from "node:fs";
import path from "node:path";
import { writeFileAtomic } from "../core/atomic.js";
import { type Chart, bitsHeatmap, curvesChart, trialsChart, widthHeatmap } from "./charts.js";
import { curvePoints, linearRows, servedBytes, trialPoints, widthRows } from "./collect.js";
import { type Section, escapeHtml, formatNumber, renderPage, table } from "./render.js";
import type { Quality, RunReport } from "./types.js";

export const REPORT_JSON = "report.json";
export const REPORT_HTML = "report.html";

export interface RunReportInput {
  command: string;
  /** The folder or file the command wrote. */
  out: string;
  options: Record<string, unknown>;
  summary: Record<string, unknown>;
  quality?: Quality | null;
  parameters?: number | null;
  /** PruneReport.layers when the command pruned (else prune.json in the folder is read). */
  pruneLayers?: unknown;
  /** The model the run started from: when `out` holds only an adapter, it is what serves with it. */
  baseModel?: string;
}

const hasOwnWeights = (dir: string) => fs.existsSync(path.join(dir, "config.json"));

/** Flag names on this process's command line (what the user set; the rest of `options` are defaults). */
function givenFlags(): string[] {
  return process.argv.slice(2).filter((w) => w.startsWith("--")).map((w) => w.slice(2).split("=")[0]!.replace(/^no-/, ""));
}

/** Where the two report files of `out` go. */
export function reportPaths(out: string): { json: string; html: string } {
  const isFile = fs.statSync(out, { throwIfNoEntry: false })?.isFile() ?? false;
  return isFile ? { json: `${out}.report.json`, html: `${out}.report.html` } : { json: path.join(out, REPORT_JSON), html: path.join(out, REPORT_HTML) };
}

/** Only what a person set or the command resolved; undefined and empty values say nothing. */
function cleanOptions(options: Record<string, unknown>): Record<string, unknown> {
  // citty adds a camelCase copy of every dashed flag (groupSize beside group-size): keep the spelling users type.
  return Object.fromEntries(Object.entries(options).filter(([k, v]) => k !== "_" && v !== undefined && v !== "" && !/[A-Z]/.test(k)));
}

export function buildRunReport(input: RunReportInput): { report: RunReport; charts: Chart[] } {
  const dir = input.out;
  const isFolder = fs.statSync(dir, { throwIfNoEntry: false })?.isDirectory() ?? false;
  // An adapter run (LoRA, PEQA, QLoRA) serves the base model with it: its map and bytes count too.
  const base = isFolder && !hasOwnWeights(dir) && input.baseModel && hasOwnWeights(input.baseModel) ? input.baseModel : null;
  const linears = isFolder ? linearRows(base ?? dir) : [];
  const widths = isFolder ? widthRows(base ?? dir, input.pruneLayers) : [];
  const curves = isFolder ? curvePoints(dir) : [];
  const { trials, budgetBytes } = isFolder ? trialPoints(dir) : { trials: [], budgetBytes: null };
  const charts = [bitsHeatmap(linears), widthHeatmap(widths), curvesChart(curves), trialsChart(trials, budgetBytes)].filter((c): c is Chart => c !== null);
  const report: RunReport = {
    slimtune_report: 1,
    command: input.command,
    commandLine: process.argv.slice(2),
    created: new Date().toISOString(),
    out: path.resolve(input.out),
    options: cleanOptions(input.options),
    given: givenFlags(),
    baseModel: base ? path.resolve(base) : null,
    servedBytes: base ? (servedBytes(input.out) ?? 0) + (servedBytes(base) ?? 0) : servedBytes(input.out),
    parameters: input.parameters ?? null,
    quality: input.quality ?? null,
    linears,
    widths,
    curves,
    trials,
    budgetBytes,
    charts: charts.map((c) => c.id),
    summary: input.summary,
  };
  return { report, charts };
}

function qualityLine(q: Quality | null): string {
  if (!q) return "not measured by this command (run slimtune eval on the result)";
  const f = (v: number | null) => (v === null ? "—" : formatNumber(v));
  const change = q.before !== null && q.after !== null ? ` (${q.after - q.before >= 0 ? "+" : ""}${formatNumber(q.after - q.before)}, ${q.higherIsBetter ? "higher" : "lower"} is better)` : "";
  return `${q.metric}: ${f(q.before)} → ${f(q.after)}${change}${q.on ? ` on ${q.on}` : ""}`;
}

const shown = (v: unknown) => (typeof v === "string" || typeof v === "number" ? v : JSON.stringify(v));

/** The options set on the command line, then the defaults folded away (a <details>, no script). */
function optionTables(report: RunReport): string {
  const entries = Object.entries(report.options);
  const set = entries.filter(([k]) => report.given.includes(k));
  const defaults = entries.filter(([k]) => !report.given.includes(k));
  const setHtml = set.length > 0 ? table(["option set", "value"], set.map(([k, v]) => [k, shown(v)])) : "<p>No option set on the command line.</p>";
  return `${setHtml}${defaults.length > 0 ? `<details><summary>${defaults.length} option${defaults.length === 1 ? "" : "s"} left at ${defaults.length === 1 ? "its default" : "their defaults"}</summary>${table(["option", "default"], defaults.map(([k, v]) => [k, shown(v)]))}</details>` : ""}`;
}

/** The page of one run. */
export async function runReportHtml(report: RunReport, charts: readonly Chart[]): Promise<string> {
  const sections: Section[] = [
    {
      title: "What was done",
      html: `<p><code>slimtune ${escapeHtml(report.commandLine.join(" "))}</code></p>${optionTables(report)}`,
    },
    {
      title: "Result",
      html: table(
        [],
        [
          ["written to", report.out],
          [report.baseModel ? `served bytes (adapter + base model ${path.basename(report.baseModel)})` : "served bytes (weight files)", report.servedBytes],
          ["parameters", report.parameters],
          ["quality", qualityLine(report.quality)],
        ],
      ),
    },
  ];
  if (report.linears.length > 0) {
    const bits = report.linears.filter((l) => l.bits !== null);
    const weights = report.linears.reduce((a, l) => a + l.outFeatures * l.inFeatures, 0);
    const avg = bits.length > 0 ? report.linears.reduce((a, l) => a + (l.bits ?? 32) * l.outFeatures * l.inFeatures, 0) / weights : null;
    sections.push({ title: "Sizes", html: `<p>${report.linears.length} linear layers, ${weights.toLocaleString("en-US")} weights${avg !== null ? `, ${avg.toFixed(2)} code bits per weight on average (float layers counted as 32)` : " (float)"}.</p>` });
  }
  return renderPage(`slimtune ${report.command}: ${path.basename(report.out)}`, `written ${report.created}`, sections, charts);
}

/** Writes report.json and report.html for a finished run; returns their paths. */
export async function writeRunReport(input: RunReportInput): Promise<{ json: string; html: string }> {
  const { report, charts } = buildRunReport(input);
  const paths = reportPaths(input.out);
  writeFileAtomic(paths.json, `${JSON.stringify(report, null, 1)}\n`);
  writeFileAtomic(paths.html, await runReportHtml(report, charts));
  return paths;
}
