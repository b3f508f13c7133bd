// slimtune/web: the page's API. Open a model from bytes (picked files, or fetched), quantize it to
// 4 bits, train PEQA or LoRA adapters step by step, generate, keep and switch adapters, and get
// the adapter files to download — on onnxruntime-web (useOnnxRuntimeWeb first).

export { useOnnxRuntimeWeb, type WebRuntime, type WebRuntimeOptions } from "./ort-web.js";
export { WebSession, defaultWebTrainOptions, type LoraChoice, type WebMethod } from "./session.js";
export type { WebStep, WebTrainOptions } from "./trainer.js";
export { modelFromBytes, configFromBytes, configFromGguf, ggufFromBytes, ggufTypeSummary, modelFromGguf, type FileBytes } from "./model-bytes.js";
export { looksLikeJsonl, webTrainingData, type WebDataChoice, type WebDataFormat, type WebTrainingData } from "./training-data.js";
export {
  WASM_MEMORY_CAP_BYTES,
  assertFitsInPage,
  describeFit,
  pageMemoryLimit,
  pageMemoryPlan,
  parameterCount,
  type BrowserMemory,
  type MethodFit,
  type PageMemoryLimit,
  type PageRun,
} from "./memory-limit.js";
export { zipFiles, type ZipEntry } from "./zip.js";
export type { OnnxDtype, OnnxExportReport } from "../export/onnx/encode.js";
export { filesFromPicked, fetchModelFiles, MODEL_FILE_NAMES } from "./files.js";
export { SlimtuneError } from "../core/errors.js";
