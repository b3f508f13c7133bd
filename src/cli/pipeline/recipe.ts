// A recipe file (YAML, or JSON, which YAML reads too): variables, named stages that each run one
// command with that command's own options, and what to compare at the end. Every mistake is E_ARG
// naming the recipe file and the line.
//
//   vars: { steps: 60 }                       # ${vars.steps}; `slimtune run --set steps=5` overrides
//   stages:
//     q4:
//       command: quantize
//       options: { model: ../shared/models/ref-llama-5m, bits: 4 }
//     tuned:
//       command: finetune
//       options: { model: "${stages.q4.out}", method: peqa, data: train.txt, steps: "${vars.steps}" }
//   compare: [ { stage: tuned, eval: tuned-eval, label: PEQA 4-bit } ]
//
// A value that is exactly one ${…} keeps its type (a number stays a number); inside a longer string
// it is spliced in as text. A relative path in a path option is read from the recipe's folder.

import fs from "node:fs";
import path from "node:path";
import { type Document, LineCounter, isMap, isScalar, parseDocument } from "yaml";
import { z } from "zod";
import { SlimtuneError, quote } from "../../core/errors.js";
import { closest } from "../strict-flags.js";
import { RUNNER_FLAGS, STAGE_COMMANDS, stageArgs } from "./stage-commands.js";

export type Value = string | number | boolean;

/** Options that name input files or folders: relative ones are resolved against the recipe's folder. */
const PATH_OPTIONS = new Set(["model", "adapter", "data", "eval-data", "reference", "calib", "from-gates", "chat-template"]);

const NAME = /^[A-Za-z][A-Za-z0-9_-]*$/;
const value = z.union([z.string(), z.number(), z.boolean()]);
const stageSchema = z.strictObject({
  command: z.string(),
  options: z.record(z.string(), value).default({}),
  description: z.string().optional(),
});
/** A row of the final table: a stage that wrote a model and the eval stage that scored it; an eval alone is a baseline (e.g. the float model). */
const compareRow = z.strictObject({ stage: z.string().optional(), eval: z.string().optional(), label: z.string().optional() });
const recipeSchema = z.strictObject({
  name: z.string().optional(),
  description: z.string().optional(),
  vars: z.record(z.string(), value).default({}),
  stages: z.record(z.string(), stageSchema),
  compare: z.array(compareRow).optional(),
});

export interface Stage {
  name: string;
  command: string;
  /** Options after substitution, relative paths resolved; `out` not yet set. */
  options: Record<string, Value>;
  /** Stages whose outputs this one reads. */
  needs: string[];
  line: number;
}

export interface Recipe {
  file: string;
  name: string;
  description: string | null;
  vars: Record<string, Value>;
  stages: Stage[];
  compare: Array<{ stage?: string; eval?: string; label: string }> | null;
}

/** 1-based line of the node at `keys` (a key's own line when the last step is a map key). */
function lineAt(doc: Document, counter: LineCounter, keys: ReadonlyArray<PropertyKey>): number {
  let node: unknown = doc.contents;
  let offset = 0;
  for (const key of keys) {
    if (isMap(node)) {
      const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(key));
      if (!pair) break;
      offset = (isScalar(pair.key) && pair.key.range ? pair.key.range[0] : offset) ?? offset;
      node = pair.value;
    } else if (node && typeof node === "object" && "items" in node && Array.isArray((node as { items: unknown[] }).items) && typeof key === "number") {
      node = (node as { items: unknown[] }).items[key];
      const range = (node as { range?: [number, number, number] } | undefined)?.range;
      if (range) offset = range[0];
    } else break;
  }
  return counter.linePos(offset).line;
}

function fail(file: string, line: number, message: string): never {
  throw new SlimtuneError("E_ARG", `line ${line}: ${message}`, file);
}

/** What a field should hold, in words (zod's own message for the rest). */
function expectation(where: ReadonlyArray<PropertyKey>, zodMessage: string): string {
  if ((where[0] === "stages" && where[2] === "options" && where.length === 4) || (where[0] === "vars" && where.length === 2)) return "must be a string, a number, or true/false (one value, not a list or a map)";
  if (where[0] === "stages" && where.length === 2) return "a stage is a map with command and options";
  if (where[0] === "stages" && where[2] === "command") return "must be a command name (quantize, finetune, …)";
  return zodMessage;
}

const REF = /\$\{([^}]*)\}/g;

/** Reads, validates and resolves a recipe. `overrides` replace vars (from --set). */
export async function loadRecipe(file: string, overrides: Record<string, string> = {}): Promise<Recipe> {
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st) throw new SlimtuneError("E_NOT_FOUND", "recipe file not found; pass a .yaml or .json recipe (see recipes/ in the repository)", file);
  if (!st.isFile()) throw new SlimtuneError("E_ARG", "is not a regular file; pass a .yaml or .json recipe", file);
  const text = fs.readFileSync(file, "utf8");
  const counter = new LineCounter();
  const doc = parseDocument(text, { lineCounter: counter, prettyErrors: false });
  if (doc.errors.length > 0) {
    const e = doc.errors[0]!;
    fail(file, counter.linePos(e.pos[0]).line, `not valid YAML/JSON: ${e.message.split("\n")[0]}`);
  }
  const parsed = recipeSchema.safeParse(doc.toJS());
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const where = [...issue.path];
    if (issue.code === "unrecognized_keys") where.push(issue.keys[0]!);
    const what = issue.code === "unrecognized_keys" ? `unknown key ${quote(issue.keys[0]!)} in ${where.length > 1 ? where.slice(0, -1).join(".") : "the recipe"}` : `${where.join(".") || "the recipe"}: ${expectation(where, issue.message)}`;
    const allowed = issue.code === "unrecognized_keys" ? (where.length === 1 ? "; a recipe has name, description, vars, stages and compare" : where[0] === "stages" ? "; a stage has command, options and description" : "") : "";
    fail(file, lineAt(doc, counter, where), `${what}${allowed}`);
  }
  const r = parsed.data;
  const dir = path.dirname(path.resolve(file));
  const vars: Record<string, Value> = { ...r.vars };
  for (const [k, v] of Object.entries(overrides)) {
    if (!(k in vars)) throw new SlimtuneError("E_ARG", `--set ${quote(k)}: the recipe has no such variable (it has ${Object.keys(vars).join(", ") || "none"})`, file);
    vars[k] = typeof vars[k] === "number" && v.trim() !== "" && Number.isFinite(Number(v)) ? Number(v) : v;
  }
  const names = Object.keys(r.stages);
  if (names.length === 0) fail(file, lineAt(doc, counter, ["stages"]), "the recipe has no stages");
  const stages: Stage[] = [];
  for (const [name, s] of Object.entries(r.stages)) {
    const line = lineAt(doc, counter, ["stages", name]);
    if (!NAME.test(name)) fail(file, line, `stage name ${quote(name)} must start with a letter and hold only letters, digits, - and _ (it names the stage's folder)`);
    if (!(s.command in STAGE_COMMANDS)) {
      const near = closest(s.command, Object.keys(STAGE_COMMANDS));
      fail(file, lineAt(doc, counter, ["stages", name, "command"]), `stage ${name}: command ${quote(s.command)} cannot be a stage${near ? `; did you mean ${near}?` : ""} (stages run ${Object.keys(STAGE_COMMANDS).join(", ")})`);
    }
    const flags = await stageArgs(s.command);
    const known = Object.entries(flags).filter(([, d]) => d.type !== "positional").map(([k]) => k);
    const needs = new Set<string>();
    const options: Record<string, Value> = {};
    for (const [key, raw] of Object.entries(s.options)) {
      const at = lineAt(doc, counter, ["stages", name, "options", key]);
      if (RUNNER_FLAGS.has(key)) fail(file, at, `stage ${name}: ${key} is set by slimtune run (each stage writes to <--out>/${name}, and an interrupted stage resumes by itself); remove it`);
      const def = flags[key];
      if (!def || def.type === "positional") {
        const near = closest(key, known);
        fail(file, at, `stage ${name}: ${s.command} has no option ${quote(key)}${near ? `; did you mean ${near}?` : `; see slimtune ${s.command} --help`}`);
      }
      const v = substitute(raw, { vars, stages: names.slice(0, names.indexOf(name)), needs }, (m) => fail(file, at, `stage ${name}, ${key}: ${m}`));
      if (def.type === "boolean" && typeof v !== "boolean") fail(file, at, `stage ${name}: ${key} is a switch of ${s.command}; write true or false (got ${quote(String(v))})`);
      if (def.type !== "boolean" && typeof v === "boolean") fail(file, at, `stage ${name}: ${key} takes a value (e.g. ${key}: ${def.default ?? "VALUE"}), not ${v}`);
      options[key] = PATH_OPTIONS.has(key) && typeof v === "string" && !v.includes("\u0000") && !path.isAbsolute(v) ? path.resolve(dir, v) : v;
    }
    stages.push({ name, command: s.command, options, needs: [...needs], line });
  }
  const compare = r.compare?.map((c, i) => {
    const at = lineAt(doc, counter, ["compare", i]);
    if (c.stage === undefined && c.eval === undefined) fail(file, at, "compare: a row names a stage, an eval, or both");
    if (c.stage !== undefined) {
      const stage = stages.find((s) => s.name === c.stage);
      if (!stage) fail(file, at, `compare: no stage named ${quote(c.stage)}`);
      if (STAGE_COMMANDS[stage.command]!.output(stage.options) === "eval") fail(file, at, `compare: ${c.stage} is an eval stage; name the stage that wrote the model in stage:, and the eval in eval:`);
    }
    if (c.eval !== undefined) {
      const ev = stages.find((s) => s.name === c.eval);
      if (!ev || ev.command !== "eval") fail(file, at, `compare: eval ${quote(c.eval)} is not an eval stage of this recipe`);
    }
    return { ...(c.stage ? { stage: c.stage } : {}), ...(c.eval ? { eval: c.eval } : {}), label: c.label ?? c.stage ?? c.eval! };
  });
  return { file: path.resolve(file), name: r.name ?? path.basename(file).replace(/\.(ya?ml|json)$/i, ""), description: r.description ?? null, vars, stages, compare: compare ?? null };
}

/** The placeholder of a stage's output (absolute once replaced, so never resolved against the recipe's folder); replaced by its path when the run's --out is known. */
export const stageOutToken = (name: string) => `\u0000stage:${name}\u0000`;

function substitute(raw: Value, ctx: { vars: Record<string, Value>; stages: string[]; needs: Set<string> }, bad: (message: string) => never): Value {
  if (typeof raw !== "string") return raw;
  const lookup = (ref: string): Value => {
    const parts = ref.trim().split(".");
    if (parts[0] === "vars" && parts.length === 2) {
      const v = ctx.vars[parts[1]!];
      if (v === undefined) bad(`\${${ref}}: no variable ${quote(parts[1]!)} in vars (${Object.keys(ctx.vars).join(", ") || "none"})`);
      return v;
    }
    if (parts[0] === "stages" && parts.length === 3 && parts[2] === "out") {
      if (!ctx.stages.includes(parts[1]!)) bad(`\${${ref}}: ${quote(parts[1]!)} is not a stage before this one (a stage reads only earlier stages' outputs)`);
      ctx.needs.add(parts[1]!);
      return stageOutToken(parts[1]!);
    }
    return bad(`\${${ref}} is not a reference; write \${vars.NAME} or \${stages.NAME.out}`);
  };
  const whole = /^\$\{([^}]*)\}$/.exec(raw);
  if (whole) return lookup(whole[1]!);
  const out = raw.replace(REF, (_, ref: string) => String(lookup(ref)));
  if (out.includes("${")) bad(`unclosed \${ in ${quote(raw)}`);
  return out;
}
