// Issue 19 item 3: an AG News classifier exported by `slimtune export`, scored on dev.tsv inside the
// runtimes it was exported for. The classifier is a `score` head [labels, hidden] on the last real
// token's final hidden state (after the last RMSNorm), which neither export carries, so each
// runtime must hand back that hidden state and the head is applied here:
//   - llama.cpp (node-llama-cpp): an embedding context. With no pooling type in the GGUF, llama.cpp
//     returns the last token's `t_embd`, the output of the final norm, i.e. exactly that state.
//   - transformers.js: its LLaMA classes give logits only (4.3.1 has no LlamaForSequenceClassification
//     and the exported decoder has no hidden-state output). The LM head is tied to the embedding E
//     [vocab, hidden] with vocab ≫ hidden, so logits z = E·h determine h: h = (EᵀE)⁻¹Eᵀz. The
//     relative residual ‖E·h − z‖/‖z‖ is recorded per example: it is ~1e-6 only when E is the
//     matrix the runtime really used, which checks the recovery instead of trusting it.
// Both runtimes tokenize with their own tokenizer (no special tokens, as slimtune's classify data),
// and the ids are compared with slimtune's; examples are cut to the head's max_len like slimtune's batches.
//
//   npx tsc -p tsconfig.build.json && node bench/ag-news-runtimes.mjs --gguf RUN/x-gguf/model.gguf \
//     --onnx RUN/x-onnx --head RUN/x --embedding MODEL/model.safetensors --tokenizer MODEL \
//     [--data ../shared/data/ag-news/dev.tsv] [--limit 0] [--out bench/results/ag-news-runtimes.json]

import fs from "node:fs";
import path from "node:path";
import { AutoModelForCausalLM, AutoTokenizer, Tensor, env } from "@huggingface/transformers";
import { getLlama, LlamaLogLevel } from "node-llama-cpp";
import { cpuStat, ensureBuilt, foreignLoad, log, machineInfo, parseFlags, root, setLogFile, shared, writeJson } from "./lib/harness.mjs";

const flags = parseFlags(
  process.argv.slice(2),
  {
    gguf: { type: "string", default: "", help: "the exported .gguf file (llama.cpp); empty: skip" },
    onnx: { type: "string", default: "", help: "the exported transformers.js folder; empty: skip" },
    head: { type: "string", default: "", help: "folder holding classifier.json/classifier.safetensors (the finetune output)" },
    embedding: { type: "string", default: "", help: "safetensors holding model.embed_tokens.weight as the ONNX export has it (the tied LM head)" },
    tokenizer: { type: "string", default: path.join(shared, "models/ref-llama-5m"), help: "slimtune tokenizer folder, for the id comparison" },
    data: { type: "string", default: path.join(shared, "data/ag-news/dev.tsv"), help: "labelled TSV" },
    limit: { type: "int", default: 0, help: "score only the first N examples (0: all)" },
    threads: { type: "int", default: 1, help: "llama.cpp threads (1: ggml's spinning workers cost seconds on a busy machine)" },
    out: { type: "string", default: path.join(root, "bench/results/ag-news-runtimes.json"), help: "results JSON" },
  },
  "node bench/ag-news-runtimes.mjs — AG News accuracy of an exported classifier inside llama.cpp and transformers.js",
);
if (!flags.head) throw new Error("--head is required: the folder with classifier.json (a finetune --task classify output)");
ensureBuilt();
setLogFile(flags.out.replace(/\.json$/, ".log"));
const dist = (m) => import(path.join(root, "dist", m));
const { readLabelledTsv } = await dist("data/tsv.js");
const { findClassifierHead } = await dist("formats/classifier-head.js");
const { loadTokenizer } = await dist("formats/tokenizer.js");
const { SafetensorsFile } = await dist("formats/safetensors.js");

const head = findClassifierHead([flags.head]);
if (!head) throw new Error(`no classifier head in ${flags.head}`);
const L = head.numLabels;
const H = head.head.length / L;
let { examples } = readLabelledTsv(flags.data);
if (flags.limit > 0) examples = examples.slice(0, flags.limit);
const slimtuneTok = await loadTokenizer(flags.tokenizer);
const slimtuneIds = examples.map((e) => slimtuneTok.encode(e.text));
log(`${examples.length} examples from ${flags.data}; head ${L}×${H}, max_len ${head.maxLen}`);

/** Label scores S·h and the argmax. */
function classify(hidden) {
  let best = 0;
  const scores = new Float64Array(L);
  for (let l = 0; l < L; l++) {
    let s = 0;
    for (let c = 0; c < H; c++) s += head.head[l * H + c] * hidden[c];
    scores[l] = s;
    if (s > scores[best]) best = l;
  }
  return best;
}

const sameIds = (a, b) => a.length === b.length && a.every((t, i) => t === b[i]);

/** Scores every example with `hiddenOf(ids)`; accuracy, speed and the other processes' CPU share. */
async function score(name, tokenize, hiddenOf) {
  const predictions = [];
  let tokenMismatches = 0;
  let tokens = 0;
  const c0 = process.cpuUsage();
  const s0 = cpuStat();
  const t0 = performance.now();
  for (let i = 0; i < examples.length; i++) {
    const ids = tokenize(examples[i].text);
    if (!sameIds(ids, slimtuneIds[i])) tokenMismatches++;
    const cut = ids.slice(0, head.maxLen);
    tokens += cut.length;
    predictions.push(classify(await hiddenOf(cut)));
  }
  const seconds = (performance.now() - t0) / 1000;
  const c1 = process.cpuUsage(c0);
  const foreign = foreignLoad(s0, cpuStat(), (c1.user + c1.system) / 1000);
  const correct = predictions.filter((p, i) => p === examples[i].label).length;
  const accuracy = correct / examples.length;
  const r = { runtime: name, examples: examples.length, accuracy, stderr: Math.sqrt((accuracy * (1 - accuracy)) / examples.length), token_mismatches: tokenMismatches, seconds, examples_per_s: examples.length / seconds, tokens_per_s: tokens / seconds, foreign_cpu_share: foreign, predictions };
  log(`${name}: accuracy ${(100 * accuracy).toFixed(1)} % (${correct}/${examples.length}), ${r.examples_per_s.toFixed(1)} examples/s, ids differing from slimtune's: ${tokenMismatches}, other processes ${(100 * foreign).toFixed(0)} % of the CPU`);
  return r;
}

const results = { machine: machineInfo(), flags, runtimes: [] };

if (flags.gguf) {
  const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: flags.gguf });
  // The embedding context prepends BOS when the GGUF asks for it; slimtune's classifier never saw one.
  const bos = model.tokens.shouldPrependBosToken;
  const context = await model.createEmbeddingContext({ contextSize: 2 * head.maxLen + 8, threads: flags.threads });
  const r = await score(
    "llama.cpp (node-llama-cpp)",
    (text) => Array.from(model.tokenize(text, false), Number),
    async (ids) => (await context.getEmbeddingFor(ids)).vector,
  );
  r.prepends_bos = bos;
  r.hidden_size = model.embeddingVectorSize;
  results.runtimes.push(r);
  await context.dispose();
  await model.dispose();
}

if (flags.onnx) {
  if (!flags.embedding) throw new Error("--embedding is required with --onnx: the tied embedding the recovery of h uses");
  const E = SafetensorsFile.open(flags.embedding).float32("model.embed_tokens.weight");
  const V = E.length / H;
  // Normal equations in float64: G = EᵀE [H, H], Cholesky once, then h = G⁻¹(Eᵀz) per example.
  const G = new Float64Array(H * H);
  for (let v = 0; v < V; v++) {
    const row = v * H;
    for (let a = 0; a < H; a++) {
      const ea = E[row + a];
      for (let b = 0; b <= a; b++) G[a * H + b] += ea * E[row + b];
    }
  }
  const C = cholesky(G, H);
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = path.dirname(path.resolve(flags.onnx));
  const name = path.basename(path.resolve(flags.onnx));
  const tokenizer = await AutoTokenizer.from_pretrained(name);
  // The export names its file by dtype (model_q4.onnx for a 4-bit model) and says which in config.json.
  const config = JSON.parse(fs.readFileSync(path.join(flags.onnx, "config.json"), "utf8"));
  const dtype = config["transformers.js_config"]?.dtype ?? "fp32";
  const lm = await AutoModelForCausalLM.from_pretrained(name, { dtype, device: "cpu" });
  const residuals = [];
  const r = await score(
    "transformers.js",
    (text) => tokenizer.encode(text, { add_special_tokens: false }),
    async (ids) => {
      const input = new Tensor("int64", BigInt64Array.from(ids, BigInt), [1, ids.length]);
      const mask = new Tensor("int64", new BigInt64Array(ids.length).fill(1n), [1, ids.length]);
      const { logits } = await lm({ input_ids: input, attention_mask: mask });
      const z = logits.data.subarray((ids.length - 1) * V, ids.length * V);
      const h = recoverHidden(E, C, z, V, H);
      residuals.push(relativeResidual(E, h, z, V, H));
      return h;
    },
  );
  residuals.sort((a, b) => a - b);
  r.hidden_recovery = { method: "h = (EᵀE)⁻¹Eᵀz from the last token's logits (tied LM head)", residual_median: residuals[residuals.length >> 1], residual_max: residuals.at(-1) };
  log(`  recovery of h from logits: relative residual median ${r.hidden_recovery.residual_median.toExponential(2)}, max ${r.hidden_recovery.residual_max.toExponential(2)}`);
  results.runtimes.push(r);
  await lm.dispose();
}

if (results.runtimes.length === 2) {
  const [a, b] = results.runtimes;
  results.agreement = a.predictions.filter((p, i) => p === b.predictions[i]).length / a.predictions.length;
  log(`the two runtimes agree on ${(100 * results.agreement).toFixed(1)} % of the predictions`);
}
writeJson(flags.out, results);
log(`→ ${flags.out}`);

/** Lower-triangular L with G = L·Lᵀ (G symmetric positive definite, lower half filled). */
function cholesky(G, n) {
  const Lo = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = G[i * n + j];
      for (let k = 0; k < j; k++) s -= Lo[i * n + k] * Lo[j * n + k];
      if (i === j) {
        if (s <= 0) throw new Error("EᵀE is not positive definite: the embedding does not determine the hidden state");
        Lo[i * n + i] = Math.sqrt(s);
      } else Lo[i * n + j] = s / Lo[j * n + j];
    }
  }
  return Lo;
}

function recoverHidden(E, Lo, z, V, n) {
  const b = new Float64Array(n);
  for (let v = 0; v < V; v++) {
    const zv = z[v];
    const row = v * n;
    for (let c = 0; c < n; c++) b[c] += E[row + c] * zv;
  }
  // Forward then backward substitution: L·y = b, Lᵀ·h = y.
  for (let i = 0; i < n; i++) {
    let s = b[i];
    for (let k = 0; k < i; k++) s -= Lo[i * n + k] * b[k];
    b[i] = s / Lo[i * n + i];
  }
  for (let i = n - 1; i >= 0; i--) {
    let s = b[i];
    for (let k = i + 1; k < n; k++) s -= Lo[k * n + i] * b[k];
    b[i] = s / Lo[i * n + i];
  }
  return b;
}

function relativeResidual(E, h, z, V, n) {
  let num = 0;
  let den = 0;
  for (let v = 0; v < V; v++) {
    let s = 0;
    for (let c = 0; c < n; c++) s += E[v * n + c] * h[c];
    num += (s - z[v]) ** 2;
    den += z[v] ** 2;
  }
  return Math.sqrt(num / den);
}
