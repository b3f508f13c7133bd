// Peak RSS of the two other commands that generate, `eval --task generate` and `chat` (and of
// `generate` itself beside them with --commands eval,chat,generate), on a quantized folder: each run its own process under /usr/bin/time, the variants taking turns round
// by round, with the share of the CPU other processes took meanwhile. Variants: this build with
// --head-bits 8 (the default), 4 and float, and optionally an earlier build (--before-dist, a copy of
// its dist/ folder kept inside this checkout so node_modules resolves) run as it was, without the flag.
// Outputs (eval's answers, chat's replies) are compared with the first variant's.
//
//   npx tsc -p tsconfig.build.json && node bench/generate-commands-memory.mjs [--model smollm2-135m-shape]
//     [--before-dist dist/before] [--rounds 3] [--new 8] [--examples 4] [--threads 1] [--out bench/results/NAME]

import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { cachedDecodeFolder } from "./lib/decode-models.mjs";
import { ensureBuilt, fmt, log, machineInfo, mdTable, median, parseFlags, root, runTimed, sampleLoad, setLogFile, writeJson } from "./lib/harness.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    model: { type: "string", default: "smollm2-135m-shape", help: "a folder name under shared/models (random weights, RTN 4-bit g32 symmetric)" },
    "before-dist": { type: "string", default: "", help: "an earlier build's dist/ folder to compare with (run without --head-bits)" },
    commands: { type: "list", default: ["eval", "chat"], help: "eval (eval --task generate), chat, and generate (unchanged here: the reference the other two now follow)" },
    rounds: { type: "int", default: 3, help: "rounds; each runs every variant of every command once" },
    new: { type: "int", default: 8, help: "new tokens per answer or reply" },
    examples: { type: "int", default: 4, help: "eval: records answered" },
    threads: { type: "int", default: 1, help: "ORT threads" },
    out: { type: "string", default: "", help: "write OUT.json and OUT.log" },
  },
  "node bench/generate-commands-memory.mjs — peak RSS of eval --task generate and chat, by build and --head-bits",
);
ensureBuilt();
if (flags.out) setLogFile(`${flags.out}.log`);
const work = path.join(os.tmpdir(), "slimtune-decode-profile");
fs.mkdirSync(work, { recursive: true });
const dir = await cachedDecodeFolder(flags.model, work, 4);

// Prompt/completion records of plain text: the synthetic tokenizer is byte-level, so each prompt is ~100 tokens.
const data = path.join(work, "generate-commands.jsonl");
const sentence = "The tower stands at the edge of the old town, and its bell rings every hour for the market. ";
fs.writeFileSync(data, Array.from({ length: flags.examples }, (_, i) => JSON.stringify({ prompt: `${i + 1}. ${sentence}Question:`, completion: " yes" })).join("\n") + "\n");
const chatInput = ["Hello, who rings the bell?", "And when does the market open?", "/exit"].join("\n") + "\n";

const variants = [
  ...(flags["before-dist"] ? [{ name: "before (earlier build)", dist: path.resolve(flags["before-dist"]), headBits: null }] : []),
  { name: "--head-bits 8 (default)", dist: path.join(root, "dist"), headBits: "8" },
  { name: "--head-bits 4", dist: path.join(root, "dist"), headBits: "4" },
  { name: "--head-bits float", dist: path.join(root, "dist"), headBits: "float" },
];

function commandArgs(command, v) {
  const common = ["--model", dir, "--threads", String(flags.threads), "--max-new-tokens", String(flags.new), ...(v.headBits ? ["--head-bits", v.headBits] : [])];
  const cli = path.join(v.dist, "cli/main.js");
  if (command === "eval") return { args: [cli, "eval", "--task", "generate", "--data", data, "--max-examples", String(flags.examples), "--json", ...common] };
  if (command === "generate") return { args: [cli, "generate", "--prompt", sentence, "--ignore-eos", "--json", ...common] };
  return { args: [cli, "chat", ...common], input: chatInput };
}

/** What the command said, to compare across variants: eval's answers, chat's replies. */
function output(command, stdout) {
  if (command === "chat") return stdout;
  const json = JSON.parse(stdout.trim().split("\n").at(-1));
  return JSON.stringify(command === "generate" ? json.ids : json.answers.map((a) => a.answer));
}

const load = await sampleLoad(2000);
log(`${flags.model} 4-bit, ${flags.threads} thread(s), ${flags.new} new tokens; machine ${fmt.pct(load.busy, 0)} busy before the runs (${load.top.map((p) => `${p.name} ${p.cpuPct.toFixed(0)} %`).join(", ")})`);
const runs = [];
for (let round = 0; round < flags.rounds; round++) {
  for (const command of flags.commands) {
    for (const v of variants) {
      const { args, input } = commandArgs(command, v);
      const r = await runTimed(process.execPath, args, { echoPrefix: null, ...(input ? { input } : {}) });
      if (r.code !== 0) throw new Error(`${command} ${v.name} failed (${r.code}): ${r.stderr.slice(-400)}`);
      const run = { round, command, variant: v.name, peak_rss_mib: r.maxRssMb, wall_s: r.wallS, cpu_s: r.userS + r.sysS, other_cpu: r.otherCpu, output: output(command, r.stdout) };
      runs.push(run);
      log(`round ${round + 1} ${command.padEnd(5)} ${v.name.padEnd(24)} peak ${fmt.f(run.peak_rss_mib, 0)} MiB, ${fmt.f(run.cpu_s, 1)} CPU s, other processes ${fmt.pct(run.other_cpu, 0)}`);
    }
  }
}

const summary = flags.commands.flatMap((command) => {
  const first = runs.find((r) => r.command === command);
  return variants.map((v) => {
    const mine = runs.filter((r) => r.command === command && r.variant === v.name);
    return {
      command,
      variant: v.name,
      peak_rss_mib: median(mine.map((r) => r.peak_rss_mib)),
      cpu_s: median(mine.map((r) => r.cpu_s)),
      other_cpu: median(mine.map((r) => r.other_cpu)),
      same_output_as_first: mine.every((r) => r.output === first.output),
    };
  });
});
log(`\n${flags.model} 4-bit (RTN g32 symmetric), ${flags.threads} thread(s); medians of ${flags.rounds} rounds, variants taking turns`);
log(mdTable(
  ["command", "variant", "peak RSS MiB", "vs first", "CPU s", "same output as first", "other CPU"],
  summary.map((s) => {
    const first = summary.find((x) => x.command === s.command);
    return [s.command === "eval" ? "eval --task generate" : s.command, s.variant, fmt.f(s.peak_rss_mib, 0), fmt.x(s.peak_rss_mib / first.peak_rss_mib), fmt.f(s.cpu_s, 1), s.same_output_as_first ? "yes" : "no", fmt.pct(s.other_cpu, 0)];
  }),
));
if (flags.out) writeJson(`${flags.out}.json`, { machine: machineInfo(), flags, load, summary, runs });
