// `slimtune run recipes/demo.yaml` end to end on ref-llama-5m with few steps (spawns dist/cli/main.js;
// build with `npx tsc -p tsconfig.build.json` first): killed during a stage, then run again — the
// finished stages are skipped, the rest run — and the comparison report holds every row. The pages it
// wrote are then opened in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core):
// no console error, one SVG per chart the report lists, and a screenshot in /tmp to look at.

import { spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { chromium } from "playwright-core";
import { describe, expect, it } from "vitest";
import { writeRunReport } from "../../src/report/run-report.js";
import { REF_MODEL, SHARED, scratchDir } from "../helpers/paths.js";

const ROOT = path.resolve(new URL("../..", import.meta.url).pathname);
const CLI = path.join(ROOT, "dist/cli/main.js");
const RECIPE = path.join(ROOT, "recipes/demo.yaml");
const out = path.join(scratchDir("run-recipe"), "demo");
const QUICK = ["--set", "steps=4,eval_tokens=2048"];

function run(): { code: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [CLI, "run", RECIPE, "--out", out, ...QUICK], { encoding: "utf8" });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Starts the run and sends SIGTERM once `line` is printed; resolves with its exit code and output. */
function runAndKillAt(line: string): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [CLI, "run", RECIPE, "--out", out, ...QUICK], { stdio: ["ignore", "pipe", "ignore"] });
    let stdout = "";
    let sent = false;
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (d: string) => {
      stdout += d;
      if (!sent && stdout.includes(line)) {
        sent = true;
        child.kill("SIGTERM");
      }
    });
    child.on("close", (code) => resolve({ code, stdout }));
  });
}

interface Row {
  run: string;
  command: string;
  servedBytes: number | null;
  quality: { metric: string; after: number | null } | null;
}

describe("slimtune run recipes/demo.yaml", () => {
  it("stops when killed, continues where it stopped, and compares the branches", async () => {
    const killed = await runAndKillAt("stage peqa (finetune): start");
    expect(killed.stdout).toMatch(/stage q4 \(quantize\): done in/);
    expect(killed.stdout).toMatch(/stage peqa \(finetune\): stopped after/);
    expect(killed.code).toBe(130);
    expect(fs.existsSync(path.join(out, "report.html"))).toBe(false);

    const resumed = run();
    expect(resumed.code, resumed.stderr).toBe(0);
    expect(resumed.stdout).toMatch(/stage q4 \(quantize\): skipped, already complete/);
    expect(resumed.stdout).toMatch(/stage peqa \(finetune\): start/);
    for (const s of ["peqa (finetune)", "float-eval (eval)", "q4-eval (eval)", "peqa-eval (eval)"]) expect(resumed.stdout).toMatch(new RegExp(`stage ${s.replace(/[()]/g, "\\$&")}: done in`));

    const { rows } = JSON.parse(fs.readFileSync(path.join(out, "report.json"), "utf8")) as { rows: Row[] };
    expect(rows.map((r) => [r.run, r.command])).toEqual([["float32", "eval"], ["RTN 4-bit", "quantize"], ["PEQA 4-bit", "finetune"]]);
    for (const r of rows) expect(r.quality?.metric).toBe("perplexity");
    const [float, rtn, peqa] = rows as [Row, Row, Row];
    // Served bytes: the float folder, the 4-bit folder, and the 4-bit folder plus PEQA's scales.
    expect(rtn.servedBytes).toBe(fs.statSync(path.join(out, "q4", "model.safetensors")).size);
    expect(peqa.servedBytes).toBe(rtn.servedBytes! + fs.statSync(path.join(out, "peqa", "adapter_model.safetensors")).size);
    expect(float.servedBytes).toBeGreaterThan(3 * rtn.servedBytes!);
    // Four PEQA steps at lr 2e-3 recover much of what 4-bit RTN per channel loses on this model.
    expect(peqa.quality!.after!).toBeLessThan(rtn.quality!.after!);
    const html = fs.readFileSync(path.join(out, "report.html"), "utf8");
    for (const r of rows) expect(html.includes(`>${r.run}<`), r.run).toBe(true);

    const again = run();
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout.match(/: skipped, already complete/g)?.length).toBe(5);
  }, 600_000);
});

// A recipe with the two multi-stage commands whose training ran in a work folder they delete:
// their reports must still draw the final training run's curves (and QPruner's trials).
const stagesOut = path.join(scratchDir("run-recipe-multistage"), "run");
const qprunerPage = path.join(stagesOut, "qpruner", "report.html");

describe("slimtune run with pruning-adapter and qpruner stages", () => {
  it("keeps each stage's metrics.jsonl, so both reports list the curves and QPruner's also the trials", async () => {
    const dir = path.dirname(stagesOut);
    // The first lines of AG News (header kept): a few batches are enough to draw a curve.
    const head = (file: string, lines: number) => {
      const to = path.join(dir, file);
      fs.writeFileSync(to, fs.readFileSync(path.join(SHARED, "data", "ag-news", file), "utf8").split("\n").slice(0, lines + 1).join("\n") + "\n");
      return to;
    };
    const data = { model: REF_MODEL, task: "classify", data: head("train.tsv", 160), "eval-data": head("dev.tsv", 32), ratio: 0.2, steps: 3, batch: 4, "max-len": 32, samples: 2 };
    const recipe = {
      name: "multistage",
      stages: {
        pa: { command: "pruning-adapter", options: data },
        qpruner: { command: "qpruner", options: { ...data, "avg-bits": 3, allocation: "bo", trials: 2, "round-size": 1, "random-starts": 1, workers: 0, "recovery-steps": 1 } },
      },
      compare: [{ stage: "pa", label: "Pruning-Adapter" }, { stage: "qpruner", label: "QPruner" }],
    };
    const file = path.join(dir, "multistage.json");
    fs.writeFileSync(file, JSON.stringify(recipe));
    // Spawned without blocking the test worker: a minute-long spawnSync starves vitest's RPC.
    const r = await new Promise<{ code: number | null; stderr: string }>((resolve, reject) => {
      const child = spawn(process.execPath, [CLI, "run", file, "--out", stagesOut], { stdio: ["ignore", "ignore", "pipe"] });
      let stderr = "";
      child.stderr.on("data", (d) => (stderr += d));
      child.on("error", reject);
      child.on("close", (code) => resolve({ code, stderr }));
    });
    expect(r.code, r.stderr).toBe(0);
    for (const [stage, charts] of [["pa", ["widths", "curves"]], ["qpruner", ["bits", "widths", "curves", "trials"]]] as const) {
      const steps = fs.readFileSync(path.join(stagesOut, stage, "metrics.jsonl"), "utf8").split("\n").filter((l) => l.includes('"kind":"train"'));
      expect(steps.length, stage).toBe(3); // the final training run's steps, not the trials'
      const report = JSON.parse(fs.readFileSync(path.join(stagesOut, stage, "report.json"), "utf8")) as { charts: string[]; curves: unknown[] };
      expect(report.charts, stage).toEqual(charts);
      expect(report.curves.length, stage).toBeGreaterThanOrEqual(3);
    }
  }, 600_000);
});

/** Opens each page in headless Chromium; returns the SVGs per figure, console errors, and screenshots. */
async function inChromium(pages: string[]): Promise<Array<{ figures: string[]; svgsInFigures: number; errors: string[]; shot: string }>> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), "slimtune-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    viewport: { width: 1200, height: 900 },
  });
  try {
    const results = [];
    for (const [i, file] of pages.entries()) {
      const page = await context.newPage();
      const errors: string[] = [];
      page.on("console", (m) => {
        if (m.type() === "error") errors.push(m.text());
      });
      page.on("pageerror", (e) => errors.push(String(e)));
      page.on("request", (r) => {
        if (!r.url().startsWith("file://")) errors.push(`network request ${r.url()}`);
      });
      await page.goto(`file://${file}`, { waitUntil: "load" });
      const figures = await page.locator("figure[data-chart]").evaluateAll((els) => els.map((e) => e.getAttribute("data-chart") ?? ""));
      const svgsInFigures = await page.locator("figure[data-chart] > svg").count();
      // A fixed name per page (the scratch folder's random suffix dropped), so each run replaces the last screenshot.
      const label = path.basename(path.dirname(file)).replace(/^slimtune-(.+)-[A-Za-z0-9]{6}$/, "$1");
      const shot = path.join(os.tmpdir(), `slimtune-report-${i}-${label}.png`);
      await page.screenshot({ path: shot, fullPage: true });
      await page.close();
      results.push({ figures, svgsInFigures, errors, shot });
    }
    return results;
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
}

describe("the reports in Chromium", () => {
  it("show every chart their report.json lists, with no console error and no network request", async () => {
    // The run above wrote these; a page with all four chart kinds comes from a mixed-precision, pruned folder.
    const full = scratchDir("report-all-charts");
    const config = JSON.parse(fs.readFileSync(path.join(REF_MODEL, "config.json"), "utf8")) as Record<string, unknown>;
    fs.writeFileSync(path.join(full, "config.json"), JSON.stringify({ ...config, quantization_config: { quant_method: "gptq", bits: 3, group_size: 32, dynamic: { "+:model\\.layers\\.(0|5)\\.": { bits: 4 } } } }));
    const layers = Array.from({ length: config.num_hidden_layers as number }, (_, i) => ({ heads: [4, 4 - (i % 3)], kvHeads: [2, 2], channels: [704, 704 - 64 * i] }));
    fs.writeFileSync(path.join(full, "prune.json"), JSON.stringify({ layers }));
    fs.copyFileSync(path.join(out, "peqa", "metrics.jsonl"), path.join(full, "metrics.jsonl"));
    const trials = Array.from({ length: 6 }, (_, i) => ({ index: i, bytes: 2e6 + 1e5 * i, loss: 3 - 0.05 * i + 0.03 * (i % 2), avg_bits: 3 + i / 4, fits_budget: i < 5, origin: i < 2 ? "start" : "bo" }));
    fs.writeFileSync(path.join(full, "mixed-precision.json"), JSON.stringify({ budget: { bytes: 2.45e6 }, trials, pareto_front: [0, 2, 4] }));
    await writeRunReport({ command: "qpruner", out: full, options: { "avg-bits": "3" }, summary: {}, quality: { metric: "accuracy", before: 0.25, after: 0.6, higherIsBetter: true } });

    const pages = [path.join(out, "report.html"), path.join(out, "q4", "report.html"), path.join(out, "peqa", "report.html"), path.join(full, "report.html"), qprunerPage];
    const expected = [["quality-vs-size"], ...[path.join(out, "q4"), path.join(out, "peqa"), full, path.dirname(qprunerPage)].map((d) => (JSON.parse(fs.readFileSync(path.join(d, "report.json"), "utf8")) as { charts: string[] }).charts)];
    expect(expected.slice(1)).toEqual([["bits"], ["bits", "curves"], ["bits", "widths", "curves", "trials"], ["bits", "widths", "curves", "trials"]]);
    const results = await inChromium(pages);
    results.forEach((r, i) => {
      expect(r.errors, pages[i]).toEqual([]);
      expect(r.figures, pages[i]).toEqual(expected[i]);
      expect(r.svgsInFigures, pages[i]).toBe(expected[i]!.length);
      expect(fs.statSync(r.shot).size).toBeGreaterThan(10_000);
    });
  }, 120_000);
});
