// Several runs side by side: a table (what each run is, its size and quality) and a quality-vs-size
// plot. `slimtune report RUN…` reads runs' report.json files; `slimtune run` passes its branches.

import fs from "node:fs";
import path from "node:path";
import { z } from "zod";
import { SlimtuneError, quote } from "../core/errors.js";
import { writeFileAtomic } from "../core/atomic.js";
import { type ComparisonPoint, qualityVsSizeChart } from "./charts.js";
import { escapeHtml, formatNumber, renderPage, table } from "./render.js";
import { reportPaths } from "./run-report.js";
import type { Quality } from "./types.js";

export interface ComparisonRow {
  /** What the row is called (a run folder's name, a recipe's stage). */
  run: string;
  command: string;
  /** A line saying what the run did (its key options). */
  what: string;
  servedBytes: number | null;
  parameters: number | null;
  quality: Quality | null;
  /** Where its own report is (linked from the table when it exists). */
  reportHtml: string | null;
}

const qualitySchema = z.object({ metric: z.string(), before: z.number().nullable(), after: z.number().nullable(), higherIsBetter: z.boolean(), on: z.string().optional() });
const reportSchema = z.looseObject({
  slimtune_report: z.literal(1),
  command: z.string(),
  options: z.record(z.string(), z.unknown()),
  given: z.array(z.string()).optional(),
  servedBytes: z.number().nullable(),
  parameters: z.number().nullable(),
  quality: qualitySchema.nullable(),
});

/** The options that tell runs apart (those set, when known), in a short line. */
export function describeOptions(options: Record<string, unknown>, given?: readonly string[]): string {
  const skip = new Set(["model", "out", "json", "data", "eval-data", "threads", "overwrite", "adapter"]);
  return Object.entries(options)
    .filter(([k]) => !skip.has(k) && (!given || given.includes(k)))
    .map(([k, v]) => `${k}=${typeof v === "object" ? JSON.stringify(v) : String(v)}`)
    .join(" ");
}

/** A run folder's (or output file's) report.json as a comparison row. */
export function readComparisonRow(run: string): ComparisonRow {
  const { json, html } = reportPaths(run);
  if (!fs.existsSync(json)) throw new SlimtuneError("E_NOT_FOUND", `${quote(run)} has no ${path.basename(json)}; pass a folder (or .gguf file) written by a slimtune command that writes a model`, run);
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(json, "utf8"));
  } catch {
    throw new SlimtuneError("E_CONFIG", "is not valid JSON; re-run the command that wrote it", json);
  }
  const parsed = reportSchema.safeParse(raw);
  if (!parsed.success) throw new SlimtuneError("E_CONFIG", `is not a slimtune report (${parsed.error.issues[0]?.path.join(".") ?? "?"}: ${parsed.error.issues[0]?.message ?? "?"})`, json);
  const r = parsed.data;
  return { run: path.basename(path.resolve(run)), command: r.command, what: describeOptions(r.options, r.given), servedBytes: r.servedBytes, parameters: r.parameters, quality: r.quality, reportHtml: fs.existsSync(html) ? path.resolve(html) : null };
}

/** The comparison page. Links to each run's own report are relative to `outFile`. */
export async function comparisonHtml(title: string, rows: readonly ComparisonRow[], outFile: string): Promise<string> {
  const points: ComparisonPoint[] = rows.flatMap((r) => (r.servedBytes !== null && r.quality?.after != null ? [{ run: r.run, MB: r.servedBytes / 1e6, quality: r.quality.after, metric: r.quality.metric }] : []));
  const link = (r: ComparisonRow) => (r.reportHtml ? `<a href="${escapeHtml(path.relative(path.dirname(path.resolve(outFile)), r.reportHtml))}">${escapeHtml(r.run)}</a>` : escapeHtml(r.run));
  const tableHtml = table(
    ["run", "command", "what", "served bytes", "parameters", "quality metric", "before", "after"],
    rows.map((r) => [{ html: link(r) }, r.command, r.what || "defaults", r.servedBytes, r.parameters, r.quality?.metric ?? null, r.quality?.before ?? null, r.quality?.after ?? null]),
  );
  const best = bestRow(rows);
  const note = best ? `<p>Best ${escapeHtml(best.quality!.metric)}: <b>${escapeHtml(best.run)}</b> (${formatNumber(best.quality!.after!)}).</p>` : "<p>No run measured a quality; add an eval stage (or slimtune eval) to compare them.</p>";
  return renderPage(title, `${rows.length} runs`, [{ title: "Side by side", html: tableHtml + note }], [qualityVsSizeChart(points)]);
}

function bestRow(rows: readonly ComparisonRow[]): ComparisonRow | null {
  const scored = rows.filter((r) => r.quality?.after != null);
  if (scored.length === 0) return null;
  const metric = scored[0]!.quality!.metric;
  const same = scored.filter((r) => r.quality!.metric === metric);
  return same.reduce((a, b) => ((b.quality!.higherIsBetter ? b.quality!.after! > a.quality!.after! : b.quality!.after! < a.quality!.after!) ? b : a));
}

/** Writes the comparison page and a JSON beside it (<name>.json) with the rows. */
export async function writeComparison(title: string, rows: readonly ComparisonRow[], outFile: string): Promise<void> {
  writeFileAtomic(outFile, await comparisonHtml(title, rows, outFile));
  writeFileAtomic(outFile.replace(/\.html?$/i, "") + ".json", `${JSON.stringify({ title, rows }, null, 1)}\n`);
}
