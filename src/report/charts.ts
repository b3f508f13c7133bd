// The charts of a report as Vega-Lite specs (rendered to static SVG by render.ts). Each chart is
// data plus an encoding; nothing here draws.

import type { TopLevelSpec } from "vega-lite";
import type { CurvePoint, LinearRow, TrialPoint, WidthRow } from "./types.js";

export interface Chart {
  /** Stable id, also the figure's data-chart attribute (the browser test counts them). */
  id: string;
  title: string;
  spec: TopLevelSpec;
}

const FONT = { font: "system-ui, sans-serif", labelFont: "system-ui, sans-serif", titleFont: "system-ui, sans-serif" };
const config = { axis: { labelFont: FONT.font, titleFont: FONT.font }, legend: { labelFont: FONT.font, titleFont: FONT.font }, view: { stroke: null } } as const;

/** Bits of each linear layer: decoder layer across, module down. Float layers are grey "float". */
export function bitsHeatmap(rows: readonly LinearRow[]): Chart | null {
  if (!rows.some((r) => r.bits !== null)) return null;
  return {
    id: "bits",
    title: "Bits per weight of each linear layer",
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v5.json",
      config,
      data: { values: rows.map((r) => ({ layer: r.layer, module: r.module, bits: r.bits ?? "float", shape: `${r.outFeatures}×${r.inFeatures}` })) },
      mark: { type: "rect", stroke: "white" },
      width: { step: 28 },
      height: { step: 22 },
      encoding: {
        x: { field: "layer", type: "ordinal", title: "decoder layer" },
        y: { field: "module", type: "nominal", title: null, sort: null },
        color: { field: "bits", type: "ordinal", title: "bits", scale: { scheme: "viridis" } },
        tooltip: [{ field: "module" }, { field: "layer" }, { field: "bits" }, { field: "shape" }],
      },
    },
  };
}

/** Fraction of each layer's heads, key/value heads and MLP channels that was kept. */
export function widthHeatmap(rows: readonly WidthRow[]): Chart | null {
  if (!rows.some((r) => r.after !== r.before)) return null;
  return {
    id: "widths",
    title: "Kept width of each layer (1 = nothing pruned)",
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v5.json",
      config,
      data: { values: rows.map((r) => ({ ...r, kept: r.before === 0 ? 0 : r.after / r.before, label: `${r.after}/${r.before}` })) },
      width: { step: 40 },
      height: { step: 26 },
      encoding: {
        x: { field: "layer", type: "ordinal", title: "decoder layer" },
        y: { field: "part", type: "nominal", title: null, sort: ["attention heads", "key/value heads", "MLP channels"] },
      },
      layer: [
        { mark: { type: "rect", stroke: "white" }, encoding: { color: { field: "kept", type: "quantitative", title: "kept", scale: { domain: [0, 1], scheme: "blues" } } } },
        { mark: { type: "text", fontSize: 9 }, encoding: { text: { field: "label" }, color: { condition: { test: "datum.kept > 0.6", value: "white" }, value: "black" } } },
      ],
    },
  };
}

/** Train loss and held-out curves by step; one panel per series so scales do not squash each other. */
export function curvesChart(points: readonly CurvePoint[]): Chart | null {
  if (points.length === 0) return null;
  return {
    id: "curves",
    title: "Training loss and held-out evaluations (metrics.jsonl)",
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v5.json",
      config,
      data: { values: [...points] },
      facet: { field: "series", type: "nominal", title: null },
      columns: 3,
      resolve: { scale: { y: "independent" } },
      spec: {
        width: 240,
        height: 160,
        mark: { type: "line", point: { size: 18 } },
        encoding: {
          x: { field: "step", type: "quantitative", title: "step" },
          // "~g": a series that never moves has a zero-width domain, whose ticks d3 would round to "0".
          y: { field: "value", type: "quantitative", title: null, scale: { zero: false }, axis: { format: "~g" } },
        },
      },
    },
  };
}

/** Every mixed-precision trial's held-out loss against its stored bytes; the Pareto front joined. */
export function trialsChart(trials: readonly TrialPoint[], budgetBytes: number | null): Chart | null {
  if (trials.length === 0) return null;
  const values = trials.map((t) => ({ ...t, MB: t.bytes / 1e6, kind: t.onFront ? "Pareto front" : t.fitsBudget ? "trial" : "over budget" }));
  return {
    id: "trials",
    title: "Mixed-precision trials: held-out loss against stored size",
    spec: {
      $schema: "https://vega.github.io/schema/vega-lite/v5.json",
      config,
      width: 420,
      height: 260,
      data: { values },
      layer: [
        {
          transform: [{ filter: "datum.onFront" }],
          mark: { type: "line", color: "#d62728", strokeDash: [4, 3] },
          encoding: { x: { field: "MB", type: "quantitative", sort: "ascending" }, y: { field: "loss", type: "quantitative" } },
        },
        {
          mark: { type: "point", filled: true, size: 60 },
          encoding: {
            x: { field: "MB", type: "quantitative", title: "stored size (MB)", scale: { zero: false } },
            y: { field: "loss", type: "quantitative", title: "held-out loss after recovery", scale: { zero: false } },
            color: { field: "kind", type: "nominal", title: null, scale: { domain: ["Pareto front", "trial", "over budget"], range: ["#d62728", "#1f77b4", "#aaaaaa"] } },
            tooltip: [{ field: "index" }, { field: "origin" }, { field: "avgBits", format: ".2f" }, { field: "loss", format: ".4f" }],
          },
        },
        ...(budgetBytes !== null ? [{ data: { values: [{ MB: budgetBytes / 1e6 }] }, mark: { type: "rule" as const, color: "#555", strokeDash: [2, 2] }, encoding: { x: { field: "MB", type: "quantitative" as const } } }] : []),
      ],
    },
  };
}

export interface ComparisonPoint {
  run: string;
  MB: number;
  quality: number;
  metric: string;
}

/** Quality against served size, one point per run (one panel per quality metric when runs differ). */
export function qualityVsSizeChart(points: readonly ComparisonPoint[]): Chart | null {
  if (points.length === 0) return null;
  const metrics = new Set(points.map((p) => p.metric));
  const base = {
    mark: { type: "point" as const, filled: true, size: 90 },
    encoding: {
      // Padding keeps the best and the smallest runs off the frame's edge, where half a point is cut.
      x: { field: "MB", type: "quantitative" as const, title: "served size (MB)", scale: { zero: false, padding: 12 } },
      y: { field: "quality", type: "quantitative" as const, title: metrics.size === 1 ? [...metrics][0]! : "quality", scale: { zero: false, padding: 12 } },
      // tableau20: a recipe such as ag-news.yaml compares 13 runs; the default palette repeats after 10.
      color: { field: "run", type: "nominal" as const, title: "run", scale: { scheme: points.length > 10 ? "tableau20" : "tableau10" }, legend: { labelLimit: 260 } },
      tooltip: [{ field: "run" }, { field: "metric" }, { field: "quality", format: ".4f" }, { field: "MB", format: ".3f" }],
    },
  };
  return {
    id: "quality-vs-size",
    title: "Quality against served size",
    spec:
      metrics.size === 1
        ? { $schema: "https://vega.github.io/schema/vega-lite/v5.json", config, width: 420, height: 280, data: { values: [...points] }, ...base }
        : { $schema: "https://vega.github.io/schema/vega-lite/v5.json", config, data: { values: [...points] }, facet: { field: "metric", type: "nominal", title: null }, resolve: { scale: { y: "independent" } }, spec: { width: 300, height: 220, ...base } },
  };
}
