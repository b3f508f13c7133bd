// Runs a recipe's stages in order, each as a child `slimtune` process writing to <root>/<stage>. A
// child process keeps each stage's memory its own (a 1B model's quantize and a finetune never share
// a heap), lets a stage's crash or Ctrl-C stop only that stage, and reuses every command exactly as
// a user runs it (strict flags, the --out claim, the marker, the report). A stage whose output is
// complete for the same command line is skipped, so a killed run continues where it stopped.

import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "../../core/atomic.js";
import { SlimtuneError } from "../../core/errors.js";
import { OUTPUT_MARKER } from "../../core/output.js";
import { type ComparisonRow, describeOptions, readComparisonRow, writeComparison } from "../../report/compare.js";
import { reportPaths } from "../../report/run-report.js";
import { servedBytes } from "../../report/collect.js";
import type { Quality } from "../../report/types.js";
import { type Recipe, type Stage, type Value, stageOutToken } from "./recipe.js";
import { STAGE_COMMANDS, type StageOutput } from "./stage-commands.js";

const MAIN = fileURLToPath(new URL("../main.js", import.meta.url));
/** Where the runner records the command line each finished stage ran with. */
const STATE_DIR = ".stages";

export interface PlannedStage {
  stage: Stage;
  kind: StageOutput;
  /** The stage's --out: a folder, a .gguf file, or (eval) the folder holding eval.json. */
  out: string;
  argv: string[];
}

/** Each stage's output path and full command line, references to earlier stages replaced. */
export function planStages(recipe: Recipe, root: string): PlannedStage[] {
  const outs = new Map<string, string>();
  return recipe.stages.map((stage) => {
    const kind = STAGE_COMMANDS[stage.command]!.output(stage.options);
    const folder = path.resolve(root, stage.name);
    const out = kind === "file" ? path.join(folder, "model.gguf") : folder;
    outs.set(stage.name, out);
    const resolve = (v: Value): Value => (typeof v === "string" ? v.replace(/\u0000stage:([^\u0000]+)\u0000/g, (_, n: string) => outs.get(n)!) : v);
    const argv = [stage.command];
    for (const [k, raw] of Object.entries(stage.options)) {
      const v = resolve(raw);
      if (typeof v === "boolean") argv.push(v ? `--${k}` : `--no-${k}`);
      else argv.push(`--${k}`, String(v));
    }
    if (kind !== "eval") argv.push("--out", out);
    argv.push("--json");
    return { stage, kind, out, argv };
  });
}

function stateFile(root: string, name: string): string {
  return path.join(root, STATE_DIR, `${name}.json`);
}

/**
 * The input files a stage names (data, templates: not folders, which earlier stages or the user's
 * model are) with their size and modification time: a changed file makes the stage run again.
 */
export function inputFiles(p: PlannedStage): Record<string, string> {
  const out: Record<string, string> = {};
  for (const v of Object.values(p.stage.options)) {
    if (typeof v !== "string" || !path.isAbsolute(v)) continue;
    const st = fs.statSync(v, { throwIfNoEntry: false });
    if (st?.isFile()) out[v] = `${st.size}:${Math.round(st.mtimeMs)}`;
  }
  return out;
}

/** What the runner recorded for a stage: written when it starts (finished null) and when it finishes. */
interface StageState {
  argv: string[];
  inputs: Record<string, string>;
  finished: string | null;
}

function readState(root: string, p: PlannedStage): StageState | null {
  try {
    return JSON.parse(fs.readFileSync(stateFile(root, p.stage.name), "utf8")) as StageState;
  } catch {
    return null;
  }
}

/** The recorded run of this stage was with this very command line and these input files. */
function sameRun(state: StageState | null, p: PlannedStage): boolean {
  return state !== null && JSON.stringify(state.argv) === JSON.stringify(p.argv) && JSON.stringify(state.inputs ?? {}) === JSON.stringify(inputFiles(p));
}

function writeState(root: string, p: PlannedStage, finished: boolean, seconds?: number): void {
  const state = { command: p.stage.command, argv: p.argv, inputs: inputFiles(p), finished: finished ? new Date().toISOString() : null, ...(seconds !== undefined ? { seconds } : {}) };
  writeFileAtomic(stateFile(root, p.stage.name), `${JSON.stringify(state)}\n`);
}

/** Complete: the stage's result files are there, and it finished with this very command line and input files. */
export function isComplete(root: string, p: PlannedStage): boolean {
  const state = readState(root, p);
  if (!sameRun(state, p) || !state!.finished) return false;
  if (p.kind === "eval") return fs.existsSync(path.join(p.out, "eval.json"));
  if (p.kind === "folder" && !fs.existsSync(path.join(p.out, OUTPUT_MARKER))) return false;
  return fs.existsSync(reportPaths(p.out).json);
}

function shortPath(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel === "" || rel.startsWith("..") ? p : rel;
}

function clock(): string {
  return new Date().toISOString().slice(11, 19);
}

function say(line: string): void {
  process.stdout.write(`[${clock()}] ${line}\n`);
}

/**
 * Signals while a recipe runs. Ctrl-C reaches the running stage from the terminal (same process
 * group), so the runner only waits for it to stop (a finetune checkpoints first); SIGTERM, sent to
 * the runner alone, is passed on. Either way no further stage starts.
 */
class StopSignals {
  stopped = false;
  private child: ChildProcess | null = null;
  private readonly onInt = () => {
    this.stopped = true;
  };
  private readonly onTerm = () => {
    this.stopped = true;
    this.child?.kill("SIGTERM");
  };

  constructor() {
    process.on("SIGINT", this.onInt);
    process.on("SIGTERM", this.onTerm);
  }

  /** Runs one stage's command line in a child process; stdout (its --json summary) is returned. */
  runChild(argv: string[]): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [MAIN, ...argv], { stdio: ["ignore", "pipe", "inherit"] });
      this.child = child;
      let stdout = "";
      child.stdout.setEncoding("utf8");
      child.stdout.on("data", (d: string) => (stdout += d));
      child.on("error", reject);
      child.on("close", (code, signal) => {
        this.child = null;
        resolve({ code, signal, stdout });
      });
    });
  }

  dispose(): void {
    process.off("SIGINT", this.onInt);
    process.off("SIGTERM", this.onTerm);
  }
}

export interface RunResult {
  ran: string[];
  skipped: string[];
  /** The comparison page; null when the run was stopped before its last stage. */
  reportHtml: string | null;
}

export async function runRecipe(recipe: Recipe, root: string): Promise<RunResult> {
  const signals = new StopSignals();
  try {
    return await runStages(recipe, root, signals);
  } finally {
    signals.dispose();
  }
}

async function runStages(recipe: Recipe, root: string, signals: StopSignals): Promise<RunResult> {
  const plan = planStages(recipe, root);
  const ran: string[] = [];
  const skipped: string[] = [];
  say(`recipe ${recipe.name}: ${plan.length} stages → ${root}`);
  for (const p of plan) {
    const label = `stage ${p.stage.name} (${p.stage.command})`;
    // A stage that reads a stage run just now runs again too, even when its own line is unchanged.
    const upstreamRan = p.stage.needs.some((n) => ran.includes(n));
    if (!upstreamRan && isComplete(root, p)) {
      say(`${label}: skipped, already complete in ${shortPath(p.out)}`);
      skipped.push(p.stage.name);
      continue;
    }
    const argv = [...p.argv];
    // A finetune killed mid-way left a checkpoint: continue it rather than start over — only when
    // that run had this command line and these inputs (else its steps trained something else).
    if (p.stage.command === "finetune" && fs.existsSync(path.join(p.out, "checkpoint")) && sameRun(readState(root, p), p)) argv.push("--resume");
    writeState(root, p, false);
    // A file stage stopped after writing its file but before its report: the file is this run's own.
    if (p.kind === "file" && fs.existsSync(p.out)) argv.push("--overwrite");
    say(`${label}: start${argv.includes("--resume") ? " (resuming from its checkpoint)" : ""}`);
    const started = Date.now();
    const r = await signals.runChild(argv);
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    if (signals.stopped || r.signal !== null || r.code === 130) {
      say(`${label}: stopped after ${seconds} s; run the same command again to continue (finished stages are skipped)`);
      process.exitCode = 130;
      return { ran, skipped, reportHtml: null };
    }
    if (r.code !== 0) {
      say(`${label}: failed after ${seconds} s (exit ${r.code})`);
      throw new SlimtuneError("E_ARG", `stage ${p.stage.name} (line ${p.stage.line}) failed; its error is above. Fix the recipe or the inputs and run the same command again: finished stages are skipped`, recipe.file);
    }
    if (p.kind === "eval") {
      fs.mkdirSync(p.out, { recursive: true });
      writeFileAtomic(path.join(p.out, "eval.json"), r.stdout.trim().split("\n").pop()! + "\n");
    }
    writeState(root, p, true, Number(seconds));
    say(`${label}: done in ${seconds} s`);
    ran.push(p.stage.name);
  }
  const reportHtml = path.join(root, "report.html");
  await writeComparison(`slimtune run ${recipe.name}`, comparisonRows(recipe, plan), reportHtml);
  say(`comparison report → ${reportHtml}`);
  return { ran, skipped, reportHtml };
}

/** What an eval stage's --json measured, as a quality. */
export function evalQuality(json: Record<string, unknown>, data: string): Quality | null {
  const on = path.basename(data);
  if (typeof json.accuracy === "number") return { metric: "accuracy", before: null, after: json.accuracy, higherIsBetter: true, on };
  if (typeof json.exact_match === "number") return { metric: "exact match", before: null, after: json.exact_match, higherIsBetter: true, on };
  if (typeof json.meanKl === "number") return { metric: "KL to the reference", before: null, after: json.meanKl, higherIsBetter: false, on };
  if (typeof json.perplexity === "number") return { metric: "perplexity", before: null, after: json.perplexity, higherIsBetter: false, on };
  if (typeof json.answer_loss === "number") return { metric: "answer loss", before: null, after: json.answer_loss, higherIsBetter: false, on };
  return null;
}

/**
 * The rows of the final table: the recipe's `compare` list, or else every stage that wrote a model,
 * each with the quality of the eval stage that scored it (its adapter or model option named it).
 */
function comparisonRows(recipe: Recipe, plan: readonly PlannedStage[]): ComparisonRow[] {
  const byName = new Map(plan.map((p) => [p.stage.name, p]));
  const evalOf = (name: string) =>
    plan.find((p) => p.kind === "eval" && (p.stage.options.adapter === stageOutToken(name) || (p.stage.options.adapter === undefined && p.stage.options.model === stageOutToken(name))))?.stage.name;
  const scoresAStage = (p: PlannedStage) => [p.stage.options.model, p.stage.options.adapter].some((v) => typeof v === "string" && v.includes("\u0000"));
  const wanted: Array<{ stage?: string; eval?: string; label: string }> = recipe.compare ?? [
    // Evals of models from outside the recipe (the float model) are the baselines.
    ...plan.filter((p) => p.kind === "eval" && !scoresAStage(p)).map((p) => ({ eval: p.stage.name, label: p.stage.name })),
    ...plan.filter((p) => p.kind !== "eval").map((p) => ({ stage: p.stage.name, eval: evalOf(p.stage.name), label: p.stage.name })),
  ];
  return wanted.map((w) => {
    let row: ComparisonRow;
    if (w.stage !== undefined) {
      const p = byName.get(w.stage)!;
      row = fs.existsSync(reportPaths(p.out).json) ? readComparisonRow(p.out) : { run: w.label, command: p.stage.command, what: describeOptions(p.stage.options), servedBytes: null, parameters: null, quality: null, reportHtml: null };
    } else {
      // A baseline: the model an eval stage scored, as it is.
      const o = byName.get(w.eval!)!.stage.options;
      const bytes = [o.model, o.adapter].filter((v): v is string => typeof v === "string").map((v) => servedBytes(v) ?? 0);
      row = { run: w.label, command: "eval", what: `${path.basename(String(o.model))}${o.adapter ? ` + ${path.basename(String(o.adapter))}` : ""} as it is`, servedBytes: bytes.reduce((a, b) => a + b, 0), parameters: null, quality: null, reportHtml: null };
    }
    row.run = w.label;
    if (w.eval) {
      const ev = byName.get(w.eval)!;
      const file = path.join(ev.out, "eval.json");
      if (fs.existsSync(file)) {
        const q = evalQuality(JSON.parse(fs.readFileSync(file, "utf8")) as Record<string, unknown>, String(ev.stage.options.data ?? ""));
        if (q) row.quality = q;
      }
    }
    return row;
  });
}
