#!/usr/bin/env node
// The slimtune command line: one sub-command per job.

import { defineCommand, runMain } from "citty";

const main = defineCommand({
  meta: { name: "slimtune", version: "0.1.0", description: "Compress and fine-tune transformer language models on ONNX Runtime" },
  subCommands: {
    eval: () => import("./commands/eval.js").then((m) => m.default),
    finetune: () => import("./commands/finetune.js").then((m) => m.default),
    demo: () => import("./commands/demo.js").then((m) => m.default),
    quantize: () => import("./commands/quantize.js").then((m) => m.default),
    prune: () => import("./commands/prune.js").then((m) => m.default),
    qpruner: () => import("./commands/qpruner.js").then((m) => m.default),
    "pruning-adapter": () => import("./commands/pruning-adapter.js").then((m) => m.default),
    generate: () => import("./commands/generate.js").then((m) => m.default),
    chat: () => import("./commands/chat.js").then((m) => m.default),
    export: () => import("./commands/export.js").then((m) => m.default),
  },
});

void runMain(main);
