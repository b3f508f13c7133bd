#!/usr/bin/env node
// Linear-probe SST-2 accuracy of model folders, with no fine-tuning: a softmax regression fitted on
// the frozen model's last-token features of --train-examples SST-2 train sentences (seeded sample),
// scored on all of dev. It measures how much task information a pruned model keeps without the
// noise of a short LoRA run (docs/results/pruning.md uses it beside the LoRA-recovered accuracy).
//
//   node bench/probe-accuracy.mjs --models DIR1,DIR2 [--labels a,b] [--train-examples 2048]

import path from "node:path";
import * as H from "./lib/harness.mjs";

const SPEC = {
  models: { type: "list", default: null, help: "model folders (float)" },
  labels: { type: "list", default: null, help: "a label per model (default: folder names)" },
  "train-examples": { type: "int", default: 2048, help: "SST-2 train sentences the probe is fitted on" },
  "max-len": { type: "int", default: 64, help: "tokens kept per sentence" },
  out: { type: "string", default: null, help: "write the results as JSON here" },
};
const a = H.parseFlags(process.argv.slice(2), SPEC, "node bench/probe-accuracy.mjs --models DIR1,DIR2");
if (!a.models) throw new Error("--models is required");

const L = await import(path.join(H.root, "dist/index.js"));
const { probeHead } = await import(path.join(H.root, "dist/prune/classify-probe.js"));
const { tokenizeExamples } = await import(path.join(H.root, "dist/data/examples.js"));
const { HEAD } = await import(path.join(H.root, "dist/models/llama/cls-graphs.js"));
const { GraphCache } = L.engine;

const rows = [];
for (const [i, dir] of a.models.entries()) {
  const model = L.LlamaModel.load(dir);
  const tokenizer = await L.loadTokenizer(dir);
  const train = tokenizeExamples(L.readLabelledTsv(H.sstTrain).examples, tokenizer);
  const dev = tokenizeExamples(L.readLabelledTsv(H.sstDev).examples, tokenizer);
  const padId = model.config.eosTokenId ?? 0;
  const t0 = performance.now();
  const head = await probeHead(model, train, { numLabels: 2, maxLen: a["max-len"], padId, batch: 32, count: a["train-examples"], seed: 0, iterations: 500 });
  const scoring = { ...L.frozenScoring(model), numLabels: 2 };
  const r = await L.accuracy({ ...scoring, weightFeeds: () => ({ [HEAD]: { data: head, shape: [2, model.config.hiddenSize] } }) }, new GraphCache(), dev, { batch: 32, maxLen: a["max-len"], padId });
  const label = a.labels?.[i] ?? path.basename(dir);
  rows.push({ label, dir, accuracy: r.accuracy, loss: r.loss, seconds: (performance.now() - t0) / 1000 });
  H.log(`${label}: probe dev accuracy ${(100 * r.accuracy).toFixed(2)} % (loss ${r.loss.toFixed(4)})`);
}
if (a.out) H.writeJson(a.out, { trainExamples: a["train-examples"], maxLen: a["max-len"], rows });
process.stdout.write(`${H.mdTable(["model", "probe dev acc", "dev loss"], rows.map((r) => [r.label, H.fmt.pct(r.accuracy, 2), H.fmt.f(r.loss, 4)]))}\n`);
