// Everything the page does with one model, in memory: open it from bytes, quantize it, train PEQA
// or LoRA adapters, generate, keep several adapters and switch between them, and hand back the
// files to download. Platform-neutral: it runs on whichever ONNX Runtime binding was chosen
// (engine/ort-binding.ts), so the browser tests run this same class in Node to compare.

import type { HostParam } from "../arch/params.js";
import { SlimtuneError, quote } from "../core/errors.js";
import { ChatRenderer, chatTemplateOf, templateTokensOf } from "../data/chat-render.js";
import { GraphCache, type SessionOptions } from "../engine/index.js";
import { Generator } from "../eval/generate.js";
import { type PerplexityResult, perplexity } from "../eval/perplexity.js";
import { PEFT_CONFIG_FILE, PEFT_WEIGHTS_FILE, parsePeftAdapter, peftAdapterFiles } from "../formats/peft.js";
import { PEQA_CONFIG, PEQA_TENSORS, parsePeqaAdapter, peqaAdapterFiles } from "../formats/peqa-adapter.js";
import { isJsonObject, parseJsonText } from "../core/json.js";
import type { TextTokenizer } from "../formats/tokenizer.js";
import { loraForDenseModel } from "../methods/lora/index.js";
import type { LoraMethod } from "../methods/lora/index.js";
import type { TuningMethod } from "../methods/method.js";
import { peqaMethod } from "../methods/peqa/index.js";
import { baseScoring } from "../models/base-scoring.js";
import type { ScoringModel } from "../models/scoring.js";
import type { LlamaModel } from "../models/llama/model.js";
import { quantizeModel } from "../quant/quantize-model.js";
import { sizeReport } from "../quant/size.js";
import type { QuantSpec, QuantizedModel } from "../quant/types.js";
import type { GgufFile } from "../formats/gguf/reader.js";
import type { TokenizerSource } from "../formats/gguf/tokenizer.js";
import { type GgufDtype, type GgufExportReport, encodeGgufModel } from "../export/gguf/model.js";
import { copyWeights, withScales } from "../export/merged.js";
import { type OnnxDtype, type OnnxExportReport, type TokenizerFileBytes, encodeOnnxFolder, tokenizerFilesFromObjects } from "../export/onnx/encode.js";
import { TOKENIZER_FILES } from "../formats/tokenizer.js";
import { mergeLora } from "../methods/lora/merge.js";
import type { LoadedBase } from "../models/load.js";
import { type FileBytes, type ModelFromBytes, modelFromBytes, modelFromGguf } from "./model-bytes.js";
import { type WebDataChoice, type WebTrainingData, webTrainingData } from "./training-data.js";
import { type WebStep, type WebTrainOptions, WebTrainer } from "./trainer.js";
import { zipFiles } from "./zip.js";

export type WebMethod = "peqa" | "lora";

export interface LoraChoice {
  rank: number;
  alpha: number;
  targets?: string[];
  seed: number;
}

/** An adapter kept in the page: which method instance it belongs to and a copy of its tensors. */
interface KeptAdapter {
  method: TuningMethod;
  tensors: Map<string, Float32Array>;
}

export const defaultWebTrainOptions: Omit<WebTrainOptions, "steps"> = {
  lr: 1e-3,
  warmupSteps: 0,
  minLrRatio: 1,
  weightDecay: 0,
  clip: 1,
  batch: 4,
  seq: 64,
  seed: 0,
  heldOut: 0.1,
};

/**
 * Float32 weights above which the page keeps the sessions of one phase only: training one method,
 * or generating with one adapter kind. ONNX Runtime's WASM heap is one wasm32 memory that never
 * shrinks and stops at 4 GiB, and every session holds its own copy of the weights there. At the
 * SmolLM2-135M shape (538 MB of float32) a PEQA step's session took the heap to 1.49 GiB, a LoRA
 * step's added 1.27 GiB and LoRA's decoder 0.81 GiB more: 3.57 GiB with all of them alive and the
 * renderer 6.0 GiB resident — the page the kernel's OOM killer took on the shared machine ("Target
 * crashed", docs/benchmarks.md §4). Freed sessions leave their room in the heap for the next one,
 * so the heap peaks at the largest phase, not at their sum (2.02 GiB; renderer 4.6 GiB). Below
 * this size every session is kept (the reference model's all fit in 0.13 GiB) and switching back
 * costs no recompilation.
 */
export const ONE_PHASE_ABOVE_BYTES = 128 * 2 ** 20;

export class WebSession {
  private quantized: QuantizedModel | null = null;
  /** One method instance per kind: adapters of a kind share its graphs, so switching never recompiles. */
  private readonly methods = new Map<WebMethod, TuningMethod>();
  private readonly generators = new Map<TuningMethod | "base", Generator>();
  private readonly adapters = new Map<string, KeptAdapter>();
  private current: TuningMethod | null = null;
  private readonly cache: GraphCache;
  trainer: WebTrainer | null = null;
  /** What the last training run read: plain text or which JSONL format, and its counts (shown in the page). */
  trainingData: WebTrainingData | null = null;
  /** Float32 weight bytes above which only one phase's sessions are kept (ONE_PHASE_ABOVE_BYTES; tests lower it). */
  onePhaseAboveBytes = ONE_PHASE_ABOVE_BYTES;
  /** Sessions being released (releaseFor); the next run waits for them so their heap is free first. */
  private releasing: Promise<void> = Promise.resolve();

  private constructor(
    readonly model: LlamaModel,
    readonly tokenizer: TextTokenizer,
    readonly fileBytes: number,
    /** The model's chat template (or the default per format) for instruction records. */
    readonly chat: ChatRenderer,
    /** The tokenizer's files as objects, written into a GGUF download. */
    private readonly tokenizerFiles: TokenizerSource,
    /** The tokenizer files as a transformers.js download carries them: a folder's own bytes, a GGUF file's rebuilt. */
    private readonly tokenizerFileBytes: TokenizerFileBytes,
    private readonly session: SessionOptions,
  ) {
    this.cache = new GraphCache(session);
  }

  static open(files: FileBytes, session: SessionOptions = {}): WebSession {
    const own = new Map([...files].filter(([name]) => TOKENIZER_FILES.includes(name)));
    return WebSession.fromParsed(modelFromBytes(files), "tokenizer_config.json", own, session);
  }

  /** A GGUF model file (parsed with ggufFromBytes): weights dequantized to float32, tokenizer and chat template from its metadata. */
  static openGguf(gguf: GgufFile, session: SessionOptions = {}): WebSession {
    const parsed = modelFromGguf(gguf);
    return WebSession.fromParsed(parsed, `${gguf.file} (tokenizer.chat_template)`, tokenizerFilesFromObjects(parsed.tokenizerJson, parsed.tokenizerConfig), session);
  }

  private static fromParsed(parsed: ModelFromBytes, templateSource: string, tokenizerFileBytes: TokenizerFileBytes, session: SessionOptions): WebSession {
    const { model, tokenizer, fileBytes, tokenizerConfig, tokenizerJson } = parsed;
    const template = chatTemplateOf(tokenizerConfig, templateSource);
    const chat = new ChatRenderer(template, templateTokensOf(tokenizerConfig), templateSource);
    return new WebSession(model, tokenizer, fileBytes, chat, { json: tokenizerJson, config: tokenizerConfig, file: "tokenizer.json" }, tokenizerFileBytes, session);
  }

  get parameterCount(): number {
    return this.model.parameterCount;
  }

  /** Bytes of the 4-bit model as a GPTQ folder would store it (null before quantize). */
  get quantizedBytes(): number | null {
    return this.quantized ? sizeReport(this.quantized).totalBytes : null;
  }

  get isQuantized(): boolean {
    return this.quantized !== null;
  }

  /** RTN quantization of every linear layer (the float model is kept for LoRA). */
  quantize(spec: QuantSpec, onProgress?: (done: number, total: number) => void): QuantizedModel {
    if (this.quantized) throw new SlimtuneError("E_ARG", "the model is already quantized; reload it to quantize again");
    this.quantized = quantizeModel(this.model, spec, onProgress);
    return this.quantized;
  }

  /** The method instance of `kind`, created once (PEQA needs quantize() first). */
  method(kind: WebMethod, lora: LoraChoice = { rank: 8, alpha: 16, seed: 0 }): TuningMethod {
    let m = this.methods.get(kind);
    if (!m) {
      if (kind === "peqa") {
        if (!this.quantized) throw new SlimtuneError("E_ARG", "PEQA trains the scales of a quantized model; quantize first");
        m = peqaMethod(this.quantized);
      } else {
        m = loraForDenseModel(this.model, { rank: lora.rank, alpha: lora.alpha, seed: lora.seed, ...(lora.targets ? { targetModules: lora.targets } : {}) }, null);
      }
      this.methods.set(kind, m);
    }
    return m;
  }

  /**
   * Starts a training run of `kind` on `text` from the method's current tensors (a fresh LoRA
   * adapter or the base's scales the first time; the active adapter after that). `text` is plain
   * text or JSONL instruction records (detected, or named by `data.format`); records train on
   * their answers only, as finetune --task sft.
   */
  startTraining(kind: WebMethod, text: string, opts: WebTrainOptions, lora?: LoraChoice, data: WebDataChoice = {}): WebTrainer {
    const parsed = webTrainingData(text, this.tokenizer, this.chat, { batch: opts.batch, seq: opts.seq, heldOut: opts.heldOut, seed: opts.seed, padId: this.model.config.eosTokenId ?? 0 }, data);
    const method = this.method(kind, lora);
    this.releaseFor({ train: method });
    this.current = method;
    this.trainingData = parsed;
    this.trainer = new WebTrainer(method, parsed.kind === "text" ? parsed.tokens : parsed.task, opts, this.cache);
    return this.trainer;
  }

  async trainStep(keepGrads = false): Promise<WebStep> {
    if (!this.trainer) throw new SlimtuneError("E_ARG", "no training run; start one first");
    await this.released();
    const trainer = this.trainer;
    return inWasmMemory("the training step", () => trainer.step(keepGrads));
  }

  /** Copies the active method's tensors under `name` (replacing an adapter of that name). */
  keepAdapter(name: string): void {
    const method = this.activeMethod();
    if (!name.trim()) throw new SlimtuneError("E_ARG", "give the adapter a name");
    this.adapters.set(name, { method, tensors: new Map([...method.trainable].map(([k, p]) => [k, p.data.slice()])) });
  }

  /** The method adapter `name` (or, without a name, the active one) belongs to; null when none is active. */
  adapterMethod(name?: string): WebMethod | null {
    const method = name !== undefined ? this.adapters.get(name)?.method : this.current;
    return method ? (method.name === "peqa" ? "peqa" : "lora") : null;
  }

  get adapterNames(): string[] {
    return [...this.adapters.keys()];
  }

  /**
   * Keeps an adapter read from its files (picked in the page) under `name` and makes it active:
   * a PEFT LoRA folder (adapter_config.json + adapter_model.safetensors) or a PEQA one
   * (peqa_adapter.json + adapter_model.safetensors, made for this 4-bit model: its fingerprint is checked).
   */
  loadAdapterFiles(name: string, files: FileBytes): WebMethod {
    if (!name.trim()) throw new SlimtuneError("E_ARG", "give the adapter a name");
    const json = (file: string) => {
      const value = parseJsonText(new TextDecoder().decode(files.get(file)!), { file, invalidFix: "re-save the adapter" });
      if (!isJsonObject(value)) throw new SlimtuneError("E_CONFIG", "must be a JSON object; re-save the adapter", file);
      return value;
    };
    const weights = files.get(PEFT_WEIGHTS_FILE) ?? files.get(PEQA_TENSORS);
    const missing = (what: string) => new SlimtuneError("E_NOT_FOUND", `${PEFT_WEIGHTS_FILE} is missing; pick it together with ${what}`);
    let kind: WebMethod;
    let tensors: Map<string, Float32Array>;
    if (files.has(PEQA_CONFIG)) {
      if (!this.quantized) throw new SlimtuneError("E_ARG", "a PEQA adapter holds the scales of a 4-bit model; quantize first, with the settings it was trained on");
      if (!weights) throw missing(PEQA_CONFIG);
      const adapter = parsePeqaAdapter(json(PEQA_CONFIG), weights, this.quantized);
      kind = "peqa";
      tensors = new Map([...adapter.scales].map(([k, p]) => [k, p.data]));
    } else if (files.has(PEFT_CONFIG_FILE)) {
      if (!weights) throw missing(PEFT_CONFIG_FILE);
      const adapter = parsePeftAdapter(json(PEFT_CONFIG_FILE), weights, { config: this.model.config });
      const c = adapter.config;
      const existing = this.methods.get("lora") as LoraMethod | undefined;
      if (!existing) {
        // The page's LoRA takes the adapter's shape: rank, alpha, rsLoRA and target modules.
        this.methods.set("lora", loraForDenseModel(this.model, { rank: c.r, alpha: c.loraAlpha, targetModules: c.targetModules, seed: 0, ...(c.useRslora ? { useRslora: true } : {}) }, null));
      } else if (existing.adapterConfig.r !== c.r || existing.adapterConfig.loraAlpha !== c.loraAlpha || !existing.adapterConfig.useRslora !== !c.useRslora || targetsKey(existing.adapterConfig.targetModules) !== targetsKey(c.targetModules)) {
        throw new SlimtuneError(
          "E_ARG",
          `this page's LoRA adapters have r=${existing.adapterConfig.r}, alpha=${existing.adapterConfig.loraAlpha} on ${JSON.stringify(existing.adapterConfig.targetModules)}; the picked one has r=${c.r}, alpha=${c.loraAlpha} on ${JSON.stringify(c.targetModules)} — reload the model to switch to its shape`,
          PEFT_CONFIG_FILE,
        );
      }
      const method = this.methods.get("lora")!;
      for (const k of method.trainable.keys()) if (!adapter.tensors.has(k)) throw new SlimtuneError("E_SAFETENSORS", `has no tensor "${k}", which the adapter's target modules need`, PEFT_WEIGHTS_FILE);
      kind = "lora";
      tensors = new Map([...adapter.tensors].map(([k, p]) => [k, p.data]));
    } else {
      throw new SlimtuneError("E_NOT_FOUND", `pick an adapter's files: ${PEFT_CONFIG_FILE} and ${PEFT_WEIGHTS_FILE} (LoRA, PEFT) or ${PEQA_CONFIG} and ${PEQA_TENSORS} (PEQA)`);
    }
    this.adapters.set(name, { method: this.methods.get(kind) ?? this.method(kind), tensors });
    this.useAdapter(name);
    return kind;
  }

  /** Makes `name` the active adapter: its tensors are copied into its method's inputs (no recompilation). */
  useAdapter(name: string): void {
    const kept = this.adapters.get(name);
    if (!kept) throw new SlimtuneError("E_ARG", `no adapter named ${quote(name)}; kept: ${this.adapterNames.join(", ") || "none"}`);
    for (const [k, data] of kept.tensors) kept.method.trainable.get(k)!.data.set(data);
    this.current = kept.method;
  }

  /** Generation without any adapter (the float model, or the quantized one once quantized). */
  useBase(): void {
    this.current = null;
  }

  /** Greedy generation with the active adapter (or the base); returns the new token ids and text. */
  async generate(prompt: string, maxNewTokens: number): Promise<{ ids: number[]; text: string; decodeTokensPerS: number }> {
    const key = this.current ?? "base";
    this.releaseFor({ generate: key });
    await this.released();
    let gen = this.generators.get(key);
    if (!gen) {
      const scoring = this.current ? methodScoring(this.current) : this.baseScoring();
      gen = await inWasmMemory("building the decoder", () => Generator.create(scoring, this.tokenizer, this.session));
      this.generators.set(key, gen);
    }
    const decoder = gen;
    const r = await inWasmMemory("generating", () => decoder.generate(prompt, { maxNewTokens, temperature: 0 }));
    return { ids: r.ids, text: r.text, decodeTokensPerS: r.decodeTokensPerS };
  }

  /** Perplexity of the active adapter (or the base) on `text`, in windows of `ctx` as `slimtune eval` scores a file. */
  async perplexity(text: string, ctx: number, batch: number): Promise<PerplexityResult> {
    const scoring = this.current ? methodScoring(this.current) : this.baseScoring();
    this.releaseFor({ evaluate: true });
    await this.released();
    return perplexity(scoring, this.cache, Int32Array.from(this.tokenizer.encode(text)), { ctx, batch });
  }

  /** The files of adapter `name` (or of the active method): PEFT for LoRA, slimtune-peqa for PEQA. */
  adapterFiles(name?: string): Map<string, Uint8Array[]> {
    const method = name ? this.adapters.get(name)?.method : this.activeMethod();
    const kept = name ? this.adapters.get(name) : undefined;
    if (!method) throw new SlimtuneError("E_ARG", `no adapter named ${quote(name ?? "")}`);
    const tensors = new Map<string, HostParam>([...method.trainable].map(([k, p]) => [k, { data: kept?.tensors.get(k) ?? p.data, shape: p.shape }]));
    if (method.name === "peqa") return peqaAdapterFiles(this.quantized!, tensors);
    return peftAdapterFiles((method as LoraMethod).adapterConfig, tensors);
  }

  /**
   * The model a deployment runs with adapter `name` (or the active one; the base when none is
   * active) merged as `slimtune export` merges a folder: PEQA's scales into the 4-bit layers, LoRA
   * folded into a copy of the float weights (W + scale·B·A).
   */
  deployedBase(name?: string): { base: LoadedBase; description: string } {
    const kept = name !== undefined ? this.adapters.get(name) : undefined;
    if (name !== undefined && !kept) throw new SlimtuneError("E_ARG", `no adapter named ${quote(name)}; kept: ${this.adapterNames.join(", ") || "none"}`);
    const method = kept?.method ?? this.current;
    const base: LoadedBase = this.quantized ? { kind: "quantized", model: this.quantized } : { kind: "float", model: this.model };
    if (!method) return { base, description: `the ${this.quantized ? "4-bit" : "float"} base, no adapter` };
    const tensors = new Map<string, HostParam>([...method.trainable].map(([k, p]) => [k, { data: kept?.tensors.get(k) ?? p.data, shape: p.shape }]));
    if (method.name === "peqa") return { base: { kind: "quantized", model: withScales(this.quantized!, { trainable: tensors }) }, description: `PEQA adapter${name ? ` "${name}"` : ""} merged into the 4-bit model` };
    const float = copyWeights(this.model);
    mergeLora(float.weights, { scale: (method as LoraMethod).scale, tensors });
    return { base: { kind: "float", model: float }, description: `LoRA adapter${name ? ` "${name}"` : ""} merged into the float model` };
  }

  /** The deployed model (deployedBase) as a GGUF file llama.cpp loads, in chunks for a download. */
  ggufFile(dtype: GgufDtype | undefined, name?: string): { chunks: Uint8Array[]; report: Omit<GgufExportReport, "file">; description: string } {
    const { base, description } = this.deployedBase(name);
    const { chunks, report } = encodeGgufModel(base, this.tokenizerFiles, { ...(dtype ? { dtype } : {}), name: name ?? "slimtune-web" });
    return { chunks, report, description };
  }

  /**
   * The deployed model (deployedBase) as the folder transformers.js loads, zipped for one download:
   * onnx/model*.onnx, config.json, generation_config.json and the tokenizer files — the files
   * `slimtune export --format onnx` writes for the same model. MatMulNBits' accuracy level 4, as export's default.
   */
  onnxZip(dtype: OnnxDtype | undefined, name?: string): { zip: Uint8Array; files: string[]; report: OnnxExportReport; description: string } {
    const { base, description } = this.deployedBase(name);
    const { files, report } = encodeOnnxFolder(base, this.tokenizerFileBytes, dtype ? { dtype } : {});
    return { zip: zipFiles(files), files: files.map((f) => f.name), report, description };
  }

  private activeMethod(): TuningMethod {
    if (!this.current) throw new SlimtuneError("E_ARG", "no adapter is active; train one first");
    return this.current;
  }

  /** The quantized model once there is one (what PEQA adapters sit on), else the float model. */
  private baseScoring() {
    return baseScoring(this.quantized ? { kind: "quantized", model: this.quantized } : { kind: "float", model: this.model });
  }

  /**
   * For a model past onePhaseAboveBytes, frees the sessions the next phase does not use: training
   * keeps only its own method's step graphs (no decoder); generating keeps only its own decoder;
   * scoring keeps the cached graphs and no decoder. Smaller models keep everything.
   */
  private releaseFor(next: { train: TuningMethod } | { generate: TuningMethod | "base" } | { evaluate: true }): void {
    if (4 * this.model.parameterCount <= this.onePhaseAboveBytes) return;
    const freed: Promise<void>[] = [];
    for (const [key, gen] of this.generators) {
      if ("generate" in next && next.generate === key) continue;
      this.generators.delete(key);
      freed.push(gen.release());
    }
    const otherMethod = "train" in next && this.trainer !== null && this.trainer.method !== next.train;
    if ("generate" in next || otherMethod) freed.push(this.cache.clear());
    if (freed.length) this.releasing = Promise.all([this.releasing, ...freed]).then(() => undefined);
  }

  /** Waits for the sessions being released; a failed release is thrown once, to the run that waited. */
  private async released(): Promise<void> {
    const pending = this.releasing;
    this.releasing = Promise.resolve();
    await pending;
  }

  async release(): Promise<void> {
    await this.released();
    for (const gen of this.generators.values()) await gen.release();
    this.generators.clear();
    await this.cache.clear();
  }
}

/**
 * ONNX Runtime running out of its WASM heap (std::bad_alloc from OrtRun or session creation; the
 * Qwen2.5-0.5B shape's PEQA step does, bench/web-limits.mjs) as E_MEMORY saying what to change.
 * In Node the same words name the machine's memory, which is what ran out there.
 */
async function inWasmMemory<T>(what: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    if (!/bad_alloc|out of memory|Aborted\(OOM\)/i.test(message)) throw e;
    throw new SlimtuneError(
      "E_MEMORY",
      `${what} ran out of ONNX Runtime's memory (in a page its WebAssembly heap, at most 4 GiB): ${message.split("\n")[0]!.slice(0, 200)}. Use a smaller model, batch or seq, or train in Node (npx slimtune finetune)`,
    );
  }
}

/** A method's current tensors as a ScoringModel (as methods/registry's methodScoring, without importing every method). */
function methodScoring(method: TuningMethod): ScoringModel {
  return { config: method.config, params: (g) => method.params(g, "eval"), weightFeeds: () => Object.fromEntries(method.trainable), cacheKey: method.name };
}

/** Target modules compared as PEFT matches them: a regex as it is, a list as a set (adapter_config.json stores it sorted). */
function targetsKey(targets: string[] | string): string {
  return typeof targets === "string" ? `re:${targets}` : JSON.stringify([...targets].sort());
}
