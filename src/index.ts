// slimtune's public API, re-exported by name.

export { SlimtuneError, type SlimtuneErrorCode } from "./errors.js";
export * as engine from "./engine/index.js";
export { LlamaModel } from "./models/llama/model.js";
export { DenseParams, type ParamSource, type HostParam } from "./models/llama/params.js";
export { buildLmTrainGraph, buildLmScoreGraph } from "./models/llama/lm-graphs.js";
export { frozenScoring } from "./models/llama/scoring.js";
export { llamaParamShapes, loadLlamaWeights, saveLlamaFolder } from "./models/llama/weights.js";
export { readLlamaConfig, parseLlamaConfig, type LlamaConfig } from "./formats/hf-config.js";
export { SafetensorsFile, writeSafetensors } from "./formats/safetensors.js";
export { loadTokenizer, type TextTokenizer } from "./formats/tokenizer.js";
export { tokenizeFile } from "./data/text-file.js";
export { perplexity, type PerplexityResult, type ScoringModel } from "./eval/perplexity.js";
export { train, defaultTrainOptions, type TrainOptions, type TrainSummary, type TrainHooks } from "./train/loop.js";
export { AdamW } from "./train/adamw.js";
export type { TuningMethod } from "./methods/method.js";
export { fullFineTuning } from "./methods/full/index.js";
