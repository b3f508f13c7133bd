// report/: what a run folder holds becomes report.json rows (bits per layer, kept widths, curves,
// trials) and a page whose charts are inline SVG with no script; comparisons escape what users name.

import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { comparisonHtml, readComparisonRow } from "../../src/report/compare.js";
import { curvePoints, linearRows, servedBytes, trialPoints, widthRows } from "../../src/report/collect.js";
import { writeRunReport } from "../../src/report/run-report.js";
import type { RunReport } from "../../src/report/types.js";
import { REF_MODEL, scratchDir } from "../helpers/paths.js";

const refConfig = JSON.parse(fs.readFileSync(path.join(REF_MODEL, "config.json"), "utf8")) as Record<string, unknown>;

/** A folder that looks like a mixed-precision GPTQ run: layer 1 at 8 bits, the rest at 3, one layer pruned. */
function mixedRun(): string {
  const dir = scratchDir("report");
  const quant = { quant_method: "gptq", bits: 3, group_size: 32, dynamic: { "+:model\\.layers\\.1\\.": { bits: 8 } } };
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify({ ...refConfig, quantization_config: quant }));
  fs.writeFileSync(path.join(dir, "model.safetensors"), Buffer.alloc(1000));
  fs.mkdirSync(path.join(dir, "checkpoint"));
  fs.writeFileSync(path.join(dir, "checkpoint", "state.safetensors"), Buffer.alloc(5000)); // resume state, not served
  const n = refConfig.num_hidden_layers as number;
  const layers = Array.from({ length: n }, (_, i) => ({ heads: [4, i === 0 ? 2 : 4], kvHeads: [2, 2], channels: [512, i === 0 ? 256 : 512] }));
  fs.writeFileSync(path.join(dir, "prune.json"), JSON.stringify({ layers }));
  const lines = [{ kind: "train", step: 1, loss: 3 }, { kind: "eval", step: 0, held_out_loss: 4, examples: 10 }, { kind: "train", step: 2, loss: 2.5 }];
  fs.writeFileSync(path.join(dir, "metrics.jsonl"), `${lines.map((l) => JSON.stringify(l)).join("\n")}\n{"kind":"tr`); // a line cut by a kill
  const trials = [0, 1, 2].map((i) => ({ index: i, bytes: 1000 + 100 * i, loss: 3 - 0.1 * i, avg_bits: 3 + i, fits_budget: i < 2, origin: "bo" }));
  fs.writeFileSync(path.join(dir, "mixed-precision.json"), JSON.stringify({ budget: { bytes: 1150 }, trials, pareto_front: [0, 1] }));
  return dir;
}

describe("collecting a run folder", () => {
  it("reads each linear layer's bits through the dynamic overrides", () => {
    const rows = linearRows(mixedRun());
    expect(rows.length).toBe(7 * (refConfig.num_hidden_layers as number));
    expect(new Set(rows.filter((r) => r.layer === 1).map((r) => r.bits))).toEqual(new Set([8]));
    expect(new Set(rows.filter((r) => r.layer !== 1).map((r) => r.bits))).toEqual(new Set([3]));
  });

  it("reads kept widths, curves (skipping a cut line), trials, and counts served bytes without checkpoints", () => {
    const dir = mixedRun();
    const widths = widthRows(dir);
    expect(widths.find((w) => w.layer === 0 && w.part === "attention heads")).toMatchObject({ before: 4, after: 2 });
    expect(widths.find((w) => w.layer === 1 && w.part === "MLP channels")).toMatchObject({ before: 512, after: 512 });
    expect(curvePoints(dir)).toEqual([
      { step: 1, series: "train loss", value: 3 },
      { step: 0, series: "held out loss", value: 4 },
      { step: 2, series: "train loss", value: 2.5 },
    ]);
    const { trials, budgetBytes } = trialPoints(dir);
    expect(budgetBytes).toBe(1150);
    expect(trials.map((t) => [t.onFront, t.fitsBudget])).toEqual([[true, true], [true, true], [false, false]]);
    expect(servedBytes(dir)).toBe(1000);
  });
});

describe("report.json and report.html", () => {
  it("writes one inline SVG per chart it lists, and no script or network reference", async () => {
    const dir = mixedRun();
    const paths = await writeRunReport({ command: "quantize", out: dir, options: { bits: "3", groupSize: "32", "group-size": "32" }, summary: { note: "<b>x</b>" }, quality: { metric: "held-out loss", before: 3, after: 2.5, higherIsBetter: false } });
    const report = JSON.parse(fs.readFileSync(paths.json, "utf8")) as RunReport;
    expect(report.charts).toEqual(["bits", "widths", "curves", "trials"]);
    expect(report.options).toEqual({ bits: "3", "group-size": "32" }); // citty's camelCase copy dropped
    const html = fs.readFileSync(paths.html, "utf8");
    for (const id of report.charts) expect(html).toMatch(new RegExp(`<figure data-chart="${id}"><figcaption>[^<]*</figcaption><svg`));
    expect(html.match(/<svg/g)?.length).toBe(report.charts.length);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/(src|href)="https?:/);
    expect(html.includes("held-out loss: 3 → 2.5000 (-0.5000, lower is better)"), "the quality line").toBe(true);
  });

  it("a float folder with nothing measured gets no charts, and says quality was not measured", async () => {
    const dir = scratchDir("report-float");
    fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(refConfig));
    const paths = await writeRunReport({ command: "export", out: dir, options: {}, summary: {} });
    const report = JSON.parse(fs.readFileSync(paths.json, "utf8")) as RunReport;
    expect(report.charts).toEqual([]);
    expect(fs.readFileSync(paths.html, "utf8")).toContain("not measured by this command");
  });

  it("a single output file gets <file>.report.json beside it", async () => {
    const dir = scratchDir("report-file");
    const file = path.join(dir, "m.gguf");
    fs.writeFileSync(file, Buffer.alloc(123));
    const paths = await writeRunReport({ command: "export", out: file, options: {}, summary: {} });
    expect(paths.json).toBe(`${file}.report.json`);
    expect((JSON.parse(fs.readFileSync(paths.json, "utf8")) as RunReport).servedBytes).toBe(123);
  });
});

describe("comparison", () => {
  it("escapes run names, links each run's report, and plots every run that measured a quality", async () => {
    const a = mixedRun();
    await writeRunReport({ command: "quantize", out: a, options: {}, summary: {}, quality: { metric: "accuracy", before: 0.5, after: 0.7, higherIsBetter: true } });
    const row = readComparisonRow(a);
    const html = await comparisonHtml("t", [{ ...row, run: "<img src=x>" }, { ...row, run: "b", quality: { ...row.quality!, after: 0.9 } }], path.join(a, "..", "cmp.html"));
    expect(html).toContain("&lt;img src=x&gt;");
    expect(html).not.toContain("<img src=x>");
    expect(html).toContain(`href="${path.basename(a)}/report.html"`);
    expect(html).toContain("Best accuracy: <b>b</b>");
    expect(html.match(/<figure data-chart="quality-vs-size"><figcaption>[^<]*<\/figcaption><svg/g)?.length).toBe(1);
  });

  it("refuses a folder without report.json", () => {
    expect(() => readComparisonRow(scratchDir("no-report"))).toThrow(/has no report\.json/);
  });
});
