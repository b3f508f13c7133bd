// slimtune's modules from src/, in the shape bench/fuzz/readers.mjs expects (the benchmark passes
// the same names from dist/).

import { llamaParamShapes } from "../../src/arch/llama/shapes.js";
import { SlimtuneError } from "../../src/core/errors.js";
import { tokenizeFile } from "../../src/data/text-file.js";
import { readLabelledTsv } from "../../src/data/tsv.js";
import { loadCheckpoint, saveCheckpoint } from "../../src/formats/checkpoint.js";
import { findClassifierHead, saveClassifierHead } from "../../src/formats/classifier-head.js";
import { loadFineGatesRun, saveFineGatesRun } from "../../src/formats/finegates-run.js";
import { GGML_TYPES, encodeRows } from "../../src/formats/gguf/ggml-types.js";
import { ggufTensorName, llamaHyperparameters, readLlamaGguf } from "../../src/formats/gguf/llama.js";
import { readGgufHeader, readTensor } from "../../src/formats/gguf/reader.js";
import { ggufTokenizerKeys } from "../../src/formats/gguf/tokenizer.js";
import { encodeGguf, writeGguf } from "../../src/formats/gguf/writer.js";
import { parseLlamaConfig, readLlamaConfig } from "../../src/formats/hf-config.js";
import { loadLlamaWeights, saveLlamaFolder } from "../../src/formats/hf-folder.js";
import { loadPeftAdapter, loraKeys, savePeftAdapter } from "../../src/formats/peft.js";
import { loadPeqaAdapter, savePeqaAdapter } from "../../src/formats/peqa-adapter.js";
import { loadQuantizedFolder, saveQuantizedFolder } from "../../src/formats/quantized/index.js";
import { SafetensorsFile, writeSafetensors } from "../../src/formats/safetensors.js";
import { loadTokenizer } from "../../src/formats/tokenizer.js";
import { HostGemm } from "../../src/quant/linalg/host-gemm.js";
import { NearestCentroid } from "../../src/quant/linalg/kmeans.js";
import { quantizeModel } from "../../src/quant/quantize-model.js";
import { quantizeReallmModel } from "../../src/quant/reallm.js";
import { scaleName, scaleShape } from "../../src/quant/scales.js";
import { gridLayer } from "../../src/quant/types.js";
import { refModelDir, sharedDir } from "../formats/helpers.js";

export const srcLib = {
  refModelDir,
  sharedDir,
  SlimtuneError,
  llamaParamShapes,
  tokenizeFile,
  readLabelledTsv,
  loadCheckpoint,
  saveCheckpoint,
  findClassifierHead,
  saveClassifierHead,
  loadFineGatesRun,
  saveFineGatesRun,
  GGML_TYPES,
  encodeRows,
  readGgufHeader,
  ggufTensorName,
  llamaHyperparameters,
  readLlamaGguf,
  readTensor,
  ggufTokenizerKeys,
  writeGguf,
  encodeGguf,
  parseLlamaConfig,
  readLlamaConfig,
  loadLlamaWeights,
  saveLlamaFolder,
  loadPeftAdapter,
  loraKeys,
  savePeftAdapter,
  loadPeqaAdapter,
  savePeqaAdapter,
  loadQuantizedFolder,
  saveQuantizedFolder,
  SafetensorsFile,
  writeSafetensors,
  loadTokenizer,
  HostGemm,
  NearestCentroid,
  quantizeModel,
  quantizeReallmModel,
  scaleName,
  scaleShape,
  gridLayer,
};
