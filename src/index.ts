// slimtune's public API, re-exported by name, layer by layer (docs/architecture.md).

// core
export { SlimtuneError, type SlimtuneErrorCode } from "./core/errors.js";
export { Rng } from "./core/rng.js";
// engine
export * as engine from "./engine/index.js";
// arch
export type { LlamaConfig, LayerShape } from "./arch/llama/config.js";
export { llamaParamShapes, linearLayers, linearPaths, LINEAR_MODULES, type LinearLayer } from "./arch/llama/shapes.js";
export type { HostParam, ParamSource, FloatWeights } from "./arch/params.js";
// quant
export type { QuantSpec, QuantizedModel, QuantizedLinear, QuantBits, ReallmSpec, ReallmLinear, LayerSpec } from "./quant/types.js";
export { quantizeModel, type QuantPlan } from "./quant/quantize-model.js";
export { quantizeLinear, dequantize } from "./quant/kinds/index.js";
export { sizeReport, type SizeReport } from "./quant/size.js";
export { budgetModel, allocationBytes, allocationAvgBits, allocationPlan, checkBudget, type Budget, type BudgetModel, type Allocation } from "./quant/budget.js";
export { fisherSensitivity, greedyAllocation } from "./quant/allocation.js";
export { gptqQuantize, prepareHessian, prepareHessianBlocked, defaultGptqSettings, type GptqSettings } from "./quant/gptq.js";
export { quantizeReallmModel, quantizeReallmLayer, reallmCandidates, type ReallmOptions } from "./quant/reallm.js";
export { lqloraQuantizeModel } from "./quant/lqlora.js";
export { HostGemm } from "./quant/linalg/host-gemm.js";
export { NearestCentroid, kmeans } from "./quant/linalg/kmeans.js";
export { truncatedSvd } from "./quant/linalg/svd.js";
// formats
export { readLlamaConfig, parseLlamaConfig } from "./formats/hf-config.js";
export { loadLlamaWeights, saveLlamaFolder } from "./formats/hf-folder.js";
export { SafetensorsFile, writeSafetensors } from "./formats/safetensors.js";
export { loadTokenizer, type TextTokenizer } from "./formats/tokenizer.js";
export { saveQuantizedFolder, loadQuantizedFolder, isQuantizedFolder, saveReallmFolder, loadReallmFolder } from "./formats/quantized/index.js";
export { savePeftAdapter, loadPeftAdapter } from "./formats/peft.js";
export { savePeqaAdapter, loadPeqaAdapter } from "./formats/peqa-adapter.js";
export { loadFineGatesRun, isFineGatesRun } from "./formats/finegates-run.js";
export { readGgufHeader, readTensor, type GgufFile } from "./formats/gguf/reader.js";
export { writeGguf, type GgufValue, type GgufTensor } from "./formats/gguf/writer.js";
export { readLlamaGguf } from "./formats/gguf/llama.js";
// models
export { LlamaModel } from "./models/llama/model.js";
export { DenseParams } from "./models/llama/params.js";
export { buildLmTrainGraph, buildLmScoreGraph } from "./models/llama/lm-graphs.js";
export { buildKvGraph, type KvGraphOptions } from "./models/llama/kv-graph.js";
export { frozenScoring } from "./models/llama/scoring.js";
export { loadBase, type LoadedBase } from "./models/load.js";
export type { ScoringModel, ClassifierModel } from "./models/scoring.js";
// data
export { tokenizeFile } from "./data/text-file.js";
export { calibrationWindows } from "./data/calibration.js";
export { readLabelledTsv } from "./data/tsv.js";
// eval
export { perplexity, type PerplexityResult } from "./eval/perplexity.js";
export { accuracy } from "./eval/classify.js";
export { Generator, type GenerateOptions, type GenerateResult } from "./eval/generate.js";
export { klToReference, type KlResult } from "./eval/kl.js";
// prune
export { removeStructure, maskStructure, type LayerKeep, type PruneReport } from "./prune/surgery.js";
export { accumulateGradients, type LossSource, type GradientStats } from "./prune/gradients.js";
export { groupImportance, type ImportanceKind, type LayerScores } from "./prune/importance.js";
export { planPruning, type PlanOptions, type PrunePlan } from "./prune/plan.js";
export { pruneModel, type PruneOptions, type PruneResult } from "./prune/prune-model.js";
// methods
export { methods, findMethod, scoringFor, methodScoring, loadAdapter } from "./methods/registry.js";
export type { TuningMethod, MethodDefinition } from "./methods/method.js";
export { withDefaults } from "./methods/flags.js";
export { fullFineTuning } from "./methods/full/index.js";
export { loraMethod, loraForDenseModel, loraFromAdapter, mergeLora } from "./methods/lora/index.js";
export { qloraMethod } from "./methods/qlora/index.js";
export { peqaMethod } from "./methods/peqa/index.js";
export { reallmMethod } from "./methods/reallm/index.js";
export { PeqaTasks } from "./methods/peqa/tasks.js";
export { fineGatesMethod, fineGatesFromRun, defaultFineGatesOptions } from "./methods/finegates/index.js";
export { pruneWithGates } from "./methods/finegates/removal.js";
// train
export { train, defaultTrainOptions, type TrainOptions, type TrainSummary, type TrainHooks } from "./train/loop.js";
export { AdamW } from "./train/adamw.js";
export { lmTask, type LmTaskOptions } from "./train/lm-task.js";
export { classifyTask, type ClassifyTaskOptions } from "./train/classify-task.js";
export type { TrainTask, TaskEval } from "./train/task.js";
// export
export { deployedModel, generationScoring, dequantizedModel } from "./export/deploy.js";
export { exportGguf, type GgufDtype, type GgufExportOptions } from "./export/gguf/model.js";
export { exportGgufLora } from "./export/gguf/lora.js";
export { exportOnnx, type OnnxDtype } from "./export/onnx/index.js";
// recipes
export { runPeqaDemo } from "./recipes/peqa-demo.js";
export { allocateBits, type MixedPrecisionOptions, type MixedPrecisionResult } from "./recipes/mixed-precision/index.js";
export { GaussianProcess, expectedImprovement } from "./recipes/mixed-precision/gp.js";
export { bayesOpt } from "./recipes/mixed-precision/bayes-opt.js";
export { runQPruner } from "./recipes/qpruner/index.js";
export { runPruningAdapter } from "./recipes/pruning-adapter/index.js";
export { gptqQuantizeModel, type GptqReport } from "./recipes/gptq.js";
