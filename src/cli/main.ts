#!/usr/bin/env node
// The slimtune command line: one sub-command per job. Flags are checked strictly (cli/strict-flags.ts)
// before a command runs; help is wrapped to the terminal (cli/help.ts).

import fs from "node:fs";
import path from "node:path";
import { type ArgsDef, type CommandDef, runCommand } from "citty";
import { SlimtuneError } from "../core/errors.js";
import { OUTPUT_MARKER, claimOutputFile, claimOutputFolder, markOutputFolder } from "../core/output.js";
import { reportError } from "./args.js";
import { renderHelp, resolveCommand } from "./help.js";
import type { OutputContext } from "./output-context.js";
import { type FlagUse, checkFlags, closest } from "./strict-flags.js";
import { writeRunReport } from "../report/run-report.js";

const version = "0.1.0";
const description = "Compress and fine-tune transformer language models on ONNX Runtime";

const commands: Record<string, () => Promise<CommandDef>> = {
  eval: () => import("./commands/eval.js").then((m) => m.default as CommandDef),
  finetune: () => import("./commands/finetune.js").then((m) => m.default as CommandDef),
  demo: () => import("./commands/demo.js").then((m) => m.default as CommandDef),
  quantize: () => import("./commands/quantize.js").then((m) => m.default as CommandDef),
  prune: () => import("./commands/prune.js").then((m) => m.default as CommandDef),
  qpruner: () => import("./commands/qpruner.js").then((m) => m.default as CommandDef),
  "pruning-adapter": () => import("./commands/pruning-adapter.js").then((m) => m.default as CommandDef),
  generate: () => import("./commands/generate.js").then((m) => m.default as CommandDef),
  chat: () => import("./commands/chat.js").then((m) => m.default as CommandDef),
  export: () => import("./commands/export.js").then((m) => m.default as CommandDef),
  run: () => import("./commands/run.js").then((m) => m.default as CommandDef),
  report: () => import("./commands/report.js").then((m) => m.default as CommandDef),
  web: () => import("./commands/web.js").then((m) => m.default as CommandDef),
};

/** What each command writes at --out: a folder, or (export --format gguf) a file. */
const outputs: Record<string, (flags: Map<string, string | boolean>) => "folder" | "file" | null> = {
  finetune: () => "folder",
  demo: () => "folder",
  // --target writes GPTQ's k-quant blocks straight to a GGUF file.
  quantize: (flags) => (flags.has("target") ? "file" : "folder"),
  prune: () => "folder",
  qpruner: () => "folder",
  "pruning-adapter": () => "folder",
  // An unknown --format is the command's own error to report.
  export: (flags) => ({ onnx: "folder", gguf: "file", "gptq-v2": "folder", hf: "folder" } as const)[String(flags.get("format") ?? "gguf")] ?? null,
  run: () => "folder",
  report: () => "file",
};

const overwriteFlag: ArgsDef = {
  overwrite: { type: "boolean", description: "Replace --out even when it holds files slimtune did not write (only once the new result is complete)" },
};

/** Where the input files and folders of a command line are, which --out must not be. */
const INPUT_FLAGS = ["model", "adapter", "data", "eval-data", "reference", "calib", "from-gates"];

/**
 * Claims --out before the command does any work (so a mistake costs nothing), marks a folder as
 * slimtune's once the command succeeded, and removes a folder it created for a command that failed
 * before writing anything into it.
 */
async function runWithOutput(name: string, command: CommandDef, argv: string[], uses: FlagUse[]): Promise<void> {
  const flags = new Map(uses.map((u) => [u.name, u.value]));
  const kindOf = outputs[name];
  const out = flags.get("out") ?? (name === "demo" ? "runs/demo" : undefined);
  if (!kindOf || typeof out !== "string") {
    await runCommand(command, { rawArgs: argv });
    return;
  }
  const inputs = INPUT_FLAGS.flatMap((f) => {
    const v = flags.get(f);
    return typeof v === "string" ? [[f, v] as const] : [];
  });
  const claim = { overwrite: flags.get("overwrite") === true, inputs };
  const kind = kindOf(flags);
  if (kind === null) {
    await runCommand(command, { rawArgs: argv });
    return;
  }
  if (kind === "file") {
    claimOutputFile(out, claim);
    await runCommand(command, { rawArgs: argv, data: { outputState: "file" } satisfies OutputContext });
    await exportReport(name, out, flags);
    return;
  }
  const state = claimOutputFolder(out, claim);
  await runCommand(command, { rawArgs: argv, data: { outputState: state } satisfies OutputContext });
  await exportReport(name, out, flags);
  const failed = process.exitCode !== undefined && process.exitCode !== 0;
  if (!failed && fs.existsSync(out)) markOutputFolder(out);
  if (failed && state === "created") {
    const left = fs.existsSync(out) ? fs.readdirSync(out) : [];
    if (left.every((f) => f === OUTPUT_MARKER)) fs.rmSync(path.resolve(out), { recursive: true, force: true });
  }
}

/**
 * export's report is written here, from its flags and what it wrote, so the export command (where
 * every format has its own branch) stays free of report code. The other commands write their own,
 * with the quality they measured.
 */
async function exportReport(name: string, out: string, flags: Map<string, string | boolean>): Promise<void> {
  const failed = process.exitCode !== undefined && process.exitCode !== 0;
  if (name !== "export" || failed || !fs.existsSync(out)) return;
  const options = Object.fromEntries([...flags].filter(([k]) => k !== "json" && k !== "overwrite"));
  await writeRunReport({ command: "export", out, options, summary: { format: options.format ?? "gguf" } });
}

async function topLevelHelp(): Promise<string> {
  const rows: Array<[string, string]> = [];
  for (const [name, load] of Object.entries(commands)) rows.push([name, (await resolveCommand(load)).meta.description ?? ""]);
  return renderHelp("slimtune", { description, version }, {}, rows);
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h") {
    process.stdout.write(`${await topLevelHelp()}\n`);
    if (name === undefined) process.exitCode = 2;
    return;
  }
  if (name === "--version" || name === "-v") {
    process.stdout.write(`${version}\n`);
    return;
  }
  const load = commands[name];
  if (!load) {
    const near = closest(name, Object.keys(commands));
    throw new SlimtuneError("E_ARG", `unknown command "${name.slice(0, 40)}"${near ? `; did you mean ${near}?` : `; commands: ${Object.keys(commands).join(", ")}`}`);
  }
  const command = await resolveCommand(load);
  const args = outputs[name] ? { ...command.args, ...overwriteFlag } : command.args;
  if (rest.includes("--help") || rest.includes("-h")) {
    process.stdout.write(`${renderHelp(`slimtune ${name}`, { ...command.meta, version }, args)}\n`);
    return;
  }
  const uses = checkFlags(name, rest, args, name === "report");
  await runWithOutput(name, command.def, rest, uses);
}

main(process.argv.slice(2)).catch((e: unknown) => {
  reportError(e);
});
