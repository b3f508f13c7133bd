// Reads what a run left in its output folder (config.json, quantization_config, prune.json,
// metrics.jsonl, mixed-precision.json) into the rows of a report. Reading the folder rather than the
// command's memory makes `slimtune report` work on any run folder, and the charts show what was
// written, not what was meant to be.

import fs from "node:fs";
import path from "node:path";
import { layerShape } from "../arch/llama/config.js";
import { linearLayers } from "../arch/llama/shapes.js";
import { isJsonObject } from "../core/json.js";
import { readLlamaConfig } from "../formats/hf-config.js";
import { findQuantizationConfig } from "../formats/quantized/common.js";
import { matchDynamic, parseDynamic } from "../formats/quantized/gptq-dynamic.js";
import type { CurvePoint, LinearRow, TrialPoint, WidthRow } from "./types.js";

/** Weight files a runtime loads. Checkpoints (resume state) are not served. */
const WEIGHT_FILE = /\.(safetensors|gguf|onnx|onnx_data|bin)$/;

function readJson(file: string): unknown {
  try {
    return JSON.parse(fs.readFileSync(file, "utf8"));
  } catch {
    return undefined;
  }
}

/** Bytes of the weight files in `target` (a folder, searched below except checkpoint/, or one file). */
export function servedBytes(target: string): number | null {
  const st = fs.statSync(target, { throwIfNoEntry: false });
  if (!st) return null;
  if (st.isFile()) return st.size;
  let total = 0;
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.name === "checkpoint" || e.name.startsWith(".")) continue;
      const p = path.join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && WEIGHT_FILE.test(e.name)) total += fs.statSync(p).size;
    }
  };
  walk(target);
  return total;
}

/** Each linear layer with its bits (from quantization_config, per-module `dynamic` overrides included). */
export function linearRows(dir: string): LinearRow[] {
  if (!fs.existsSync(path.join(dir, "config.json"))) return [];
  let config;
  try {
    config = readLlamaConfig(dir);
  } catch {
    return []; // not a model folder slimtune can read (an adapter, an ONNX folder): no map
  }
  const quant = findQuantizationConfig(dir)?.quant;
  const method = typeof quant?.quant_method === "string" ? quant.quant_method : null;
  const defaultBits = typeof quant?.bits === "number" ? quant.bits : method === "slimtune-nf4" ? 4 : null;
  let dynamic: ReturnType<typeof parseDynamic> = [];
  if (quant && quant.dynamic !== undefined) {
    try {
      dynamic = parseDynamic(quant.dynamic, path.join(dir, "config.json"));
    } catch {
      dynamic = [];
    }
  }
  return linearLayers(config).map((l) => {
    let bits: number | null = quant ? defaultBits : null;
    const rule = dynamic.length > 0 ? matchDynamic(dynamic, l.path)?.rule : undefined;
    if (rule?.skip) bits = null;
    else if (rule && rule.overrides.bits !== undefined) bits = rule.overrides.bits;
    return { layer: l.layer, module: l.module, outFeatures: l.outFeatures, inFeatures: l.inFeatures, bits };
  });
}

type PruneLayers = Array<{ heads: [number, number]; kvHeads: [number, number]; channels: [number, number] }>;

function isPruneLayers(v: unknown): v is PruneLayers {
  return Array.isArray(v) && v.every((l) => isJsonObject(l) && Array.isArray(l.heads) && Array.isArray(l.kvHeads) && Array.isArray(l.channels));
}

/**
 * Kept units per layer: from the pruning report the command passes, else prune.json in the folder,
 * else (no pruning recorded) the widths of config.json against themselves.
 */
export function widthRows(dir: string, pruneLayers?: unknown): WidthRow[] {
  let layers: PruneLayers | null = isPruneLayers(pruneLayers) ? pruneLayers : null;
  if (!layers) {
    const record = readJson(path.join(dir, "prune.json"));
    if (isJsonObject(record) && isPruneLayers(record.layers)) layers = record.layers;
  }
  if (!layers) {
    const finegates = readJson(path.join(dir, "finegates.json"));
    if (isJsonObject(finegates) && isPruneLayers(finegates.layers)) layers = finegates.layers;
  }
  if (layers) {
    return layers.flatMap((l, i) => [
      { layer: i, part: "attention heads" as const, before: l.heads[0], after: l.heads[1] },
      { layer: i, part: "key/value heads" as const, before: l.kvHeads[0], after: l.kvHeads[1] },
      { layer: i, part: "MLP channels" as const, before: l.channels[0], after: l.channels[1] },
    ]);
  }
  if (!fs.existsSync(path.join(dir, "config.json"))) return [];
  try {
    const config = readLlamaConfig(dir);
    return Array.from({ length: config.numLayers }, (_, i) => layerShape(config, i)).flatMap((s, i) => [
      { layer: i, part: "attention heads" as const, before: s.numHeads, after: s.numHeads },
      { layer: i, part: "key/value heads" as const, before: s.numKvHeads, after: s.numKvHeads },
      { layer: i, part: "MLP channels" as const, before: s.intermediateSize, after: s.intermediateSize },
    ]);
  } catch {
    return [];
  }
}

/** Train loss and held-out values by step from metrics.jsonl (in the folder or its adapter/). */
export function curvePoints(dir: string): CurvePoint[] {
  const file = [path.join(dir, "metrics.jsonl"), path.join(dir, "adapter", "metrics.jsonl")].find((f) => fs.existsSync(f));
  if (!file) return [];
  const points: CurvePoint[] = [];
  for (const line of fs.readFileSync(file, "utf8").split("\n")) {
    if (line.trim() === "") continue;
    let r: unknown;
    try {
      r = JSON.parse(line);
    } catch {
      continue; // a line cut short by a kill
    }
    if (!isJsonObject(r) || typeof r.step !== "number") continue;
    if (r.kind === "train" && typeof r.loss === "number") points.push({ step: r.step, series: "train loss", value: r.loss });
    if (r.kind === "eval") {
      for (const [k, v] of Object.entries(r)) {
        if (typeof v !== "number" || k === "step" || k === "examples") continue;
        points.push({ step: r.step, series: k.replace(/_/g, " "), value: v });
      }
    }
  }
  return points;
}

/** Mixed-precision trials and the Pareto front from mixed-precision.json (quantize --budget, qpruner). */
export function trialPoints(dir: string): { trials: TrialPoint[]; budgetBytes: number | null } {
  const record = readJson(path.join(dir, "mixed-precision.json"));
  if (!isJsonObject(record) || !Array.isArray(record.trials)) return { trials: [], budgetBytes: null };
  const front = new Set(Array.isArray(record.pareto_front) ? record.pareto_front.filter((i): i is number => typeof i === "number") : []);
  const budget = isJsonObject(record.budget) && typeof record.budget.bytes === "number" ? record.budget.bytes : null;
  const trials: TrialPoint[] = [];
  for (const t of record.trials) {
    if (!isJsonObject(t) || typeof t.index !== "number" || typeof t.bytes !== "number" || typeof t.loss !== "number") continue;
    trials.push({
      index: t.index,
      bytes: t.bytes,
      loss: t.loss,
      avgBits: typeof t.avg_bits === "number" ? t.avg_bits : NaN,
      fitsBudget: t.fits_budget !== false,
      onFront: front.has(t.index),
      origin: typeof t.origin === "string" ? t.origin : "",
    });
  }
  return { trials, budgetBytes: budget };
}
