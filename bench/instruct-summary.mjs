// Tables for docs/results/instruct.md from bench/results/instruct/*.json (bench/instruct-experiment.sh):
// exact match on t0-mix-dev before and after each method, overall and per template family, held-out
// answer loss, tokens/s, three answers per method; packing speed; AG News as generation vs a head.
import fs from "node:fs";
import path from "node:path";

const dir = path.join(path.dirname(new URL(import.meta.url).pathname), "results", "instruct");
const read = (name) => {
  const f = path.join(dir, `${name}.json`);
  // A run still writing (or one that failed) leaves an empty file: skip it.
  const text = fs.existsSync(f) ? fs.readFileSync(f, "utf8").trim() : "";
  return text ? JSON.parse(text) : null;
};
const FAMILIES = ["ag_news", "amazon_polarity", "app_reviews", "common_gen", "dbpedia_14", "glue_mrpc", "imdb", "rotten_tomatoes", "trec", "yelp_review_full"];
const family = (t) => FAMILIES.find((f) => t.startsWith(`${f}_`)) ?? t;
const pct = (x) => (x === undefined || x === null ? "–" : `${(100 * x).toFixed(1)}`);

function byFamily(em) {
  const out = {};
  for (const a of em.answers) {
    const f = family(a.template ?? "");
    out[f] ??= { n: 0, m: 0 };
    out[f].n++;
    out[f].m += a.match ? 1 : 0;
  }
  return Object.fromEntries(Object.entries(out).map(([f, v]) => [f, v.m / v.n]));
}

const rows = [
  // name, base, exact match before, after, training summary, learning rate (as bench/instruct-experiment.sh passes it)
  ["full", "float", "em-float-before", "em-full", "train-full", "5e-4"],
  ["LoRA r8", "float", "em-float-before", "em-lora", "train-lora", "2e-3"],
  ["QLoRA-4 r8", "RTN 4-bit", "em-q4-before", "em-qlora", "train-qlora", "2e-3"],
  ["PEQA-4", "RTN 4-bit", "em-q4-before", "em-peqa", "train-peqa", "2e-3"],
  ["LoRA r8 on 30 % pruned", "pruned 30 %", "em-p30-before", "em-p30-lora", "train-p30-lora", "2e-3"],
];
// The floor any tuned model should beat: answer each dev record with its template's most frequent
// training answer (normalised as eval --task generate compares).
const { normalizeAnswer } = await import("../dist/eval/answers.js");
const shared = path.join(path.dirname(new URL(import.meta.url).pathname), "..", "..", "shared", "data", "instructions");
const jsonl = (f) => fs.readFileSync(path.join(shared, f), "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
const counts = {};
for (const r of jsonl("t0-mix-train.jsonl")) {
  const c = (counts[r.template] ??= {});
  const k = normalizeAnswer(r.completion);
  c[k] = (c[k] ?? 0) + 1;
}
const majority = Object.fromEntries(Object.entries(counts).map(([t, c]) => [t, Object.entries(c).sort((a, b) => b[1] - a[1])[0][0]]));
const baseline = { answers: jsonl("t0-mix-dev.jsonl").map((r) => ({ template: r.template, match: normalizeAnswer(r.completion) === majority[r.template] })) };
baseline.exact_match = baseline.answers.filter((a) => a.match).length / baseline.answers.length;
const singleAnswer = Object.values(counts).filter((c) => Object.keys(c).length === 1).length;
// Exact match over the templates whose training answers vary: there the answer depends on the input.
const varied = (em) => {
  const xs = em.answers.filter((a) => Object.keys(counts[a.template] ?? {}).length > 1);
  return xs.filter((a) => a.match).length / xs.length;
};

const lines = [];
lines.push(
  `majority answer per template (from the training file): ${pct(baseline.exact_match)} % exact match on t0-mix-dev, ${pct(varied(baseline))} % on the templates whose answers vary; ` +
    `${singleAnswer} of ${Object.keys(counts).length} templates have one answer in all their training records`,
  "",
);
lines.push("| method | base | lr | steps | tokens/s | held-out answer loss | exact match before → after (%) | after, templates with varied answers (%) |", "|---|---|---|---|---|---|---|---|");
for (const [name, base, before, after, trainName, lr] of rows) {
  const t = read(trainName);
  const b = read(before);
  const a = read(after);
  if (!t || !b || !a) continue;
  lines.push(`| ${name} | ${base} | ${lr} | ${t.steps} | ${Math.round(t.tokensPerSecond)} | ${t.heldOutBefore.loss.toFixed(3)} → ${t.heldOutAfter.loss.toFixed(3)} | ${pct(b.exact_match)} → ${pct(a.exact_match)} | ${pct(varied(a))} |`);
}
lines.push("");
const fams = FAMILIES;
lines.push(`| exact match (%) | ${fams.join(" | ")} |`, `|---|${fams.map(() => "---").join("|")}|`);
const fb = byFamily(baseline);
lines.push(`| majority answer per template | ${fams.map((x) => pct(fb[x])).join(" | ")} |`);
const seen = new Set();
for (const [name, , before, after] of rows) {
  for (const [label, file] of [[`before (${before.replace("em-", "").replace("-before", "")})`, before], [name, after]]) {
    if (seen.has(file)) continue;
    seen.add(file);
    const em = read(file);
    if (!em) continue;
    const f = byFamily(em);
    lines.push(`| ${label} | ${fams.map((x) => pct(f[x])).join(" | ")} |`);
  }
}
lines.push("");
for (const [name, , , after] of rows) {
  const em = read(after);
  if (!em) continue;
  lines.push(`${name}:`);
  // Three answers, the same records for every method: the first of a topic task, a sentiment task
  // whose answers vary, and a free-text task (CommonGen).
  const picked = ["ag_news", "amazon_polarity", "common_gen"].map((f) => em.answers.find((a) => family(a.template) === f)).filter(Boolean);
  for (const a of picked) lines.push(`- [${a.template}] ${a.match ? "✓" : "✗"} answered ${JSON.stringify(a.answer.slice(0, 80))}, reference ${JSON.stringify(a.reference.slice(0, 80))}`);
  lines.push("");
}
const sp = read("speed-packed");
const su = read("speed-unpacked");
if (sp && su) lines.push(`packing: ${Math.round(sp.tokensPerSecond)} tokens/s packed, ${Math.round(su.tokensPerSecond)} one example per row (${(sp.tokensPerSecond / su.tokensPerSecond).toFixed(2)}×), LoRA, batch 8 × 256, 20 steps`, "");
const agb = read("em-ag-before");
const agg = read("em-ag-gen");
const agt = read("train-ag-gen");
const agc = read("train-ag-cls");
if (agb && agg && agc) {
  lines.push("| AG News dev (1,000) | before | after | held-out loss |", "|---|---|---|---|");
  lines.push(`| generation (LoRA, exact match %) | ${pct(agb.exact_match)} | ${pct(agg.exact_match)} | ${agt.heldOutBefore.loss.toFixed(3)} → ${agt.heldOutAfter.loss.toFixed(3)} |`);
  lines.push(`| classification head (LoRA, accuracy %) | ${pct(agc.heldOutBefore.metrics.accuracy)} | ${pct(agc.heldOutAfter.metrics.accuracy)} | ${agc.heldOutBefore.loss.toFixed(3)} → ${agc.heldOutAfter.loss.toFixed(3)} |`);
  const answers = {};
  for (const a of agg.answers) answers[a.answer.trim()] = (answers[a.answer.trim()] ?? 0) + 1;
  lines.push("", `generated answers after tuning: ${Object.entries(answers).sort((a, b) => b[1] - a[1]).slice(0, 6).map(([k, v]) => `${JSON.stringify(k)} ${v}`).join(", ")}`);
}
process.stdout.write(`${lines.join("\n")}\n`);
