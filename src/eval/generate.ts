// Text generation with a key/value cache: one session of the KV graph runs the prefill over the
// prompt, then one new token per run. With ORT's fused kernels the cache lives in buffers sized for
// the whole generation, and a run returns only the rows it adds (KvCache below); the portable graph
// returns the whole cache, which the next run takes back as its past. Any ScoringModel generates
// (float, quantized, with an adapter), since the graph gets its weights through its ParamSource. It
// lives in eval/ beside perplexity: both run a model over tokens; the CLI above picks the model and
// adapter.

import { SlimtuneError } from "../core/errors.js";
import { Rng } from "../core/rng.js";
import { CompiledGraph, Graph, type HostTensor, type SessionOptions } from "../engine/index.js";
import type { TextTokenizer } from "../formats/tokenizer.js";
import { ATTENTION_MASK, INPUT_IDS, LOGITS, POSITION_IDS, buildKvGraph, newRowsName, pastName, presentName } from "../models/llama/kv-graph.js";
import type { ScoringModel } from "../models/scoring.js";
import { QuantizedParams } from "../models/parts/quantized-params.js";
import { type SamplingOptions, nextToken } from "./sampling.js";

export interface GenerateOptions extends SamplingOptions {
  maxNewTokens: number;
  /** Seeds sampling (ignored when greedy). */
  seed?: number;
  /** Generation ends before the first occurrence of any of these strings. */
  stop?: readonly string[];
  /** Token ids that end generation; default: the tokenizer's and config's end-of-sequence ids. */
  eosTokenIds?: readonly number[];
  /** Receives the text as it is generated, in pieces that never split a character or a stop string. */
  onText?: (delta: string) => void;
}

export interface GenerateResult {
  promptIds: number[];
  /** New token ids, with the end-of-sequence token when generation ended on it (as transformers). */
  ids: number[];
  /** The new text, without the end-of-sequence token and cut before a stop string. */
  text: string;
  stopReason: "eos" | "stop" | "length" | "context";
  prefillSeconds: number;
  decodeSeconds: number;
  /** Prompt tokens per second of the prefill run. */
  prefillTokensPerS: number;
  /** New tokens per second after the first (one decode run each). */
  decodeTokensPerS: number;
  /**
   * CPU seconds this process spent in the prefill and in the decode runs (every thread's), or null
   * where the platform does not say (a page). On a shared machine wall time counts other processes'
   * turns; CPU time is the work itself, so benchmarks compare runtimes per CPU second too.
   */
  prefillCpuSeconds: number | null;
  decodeCpuSeconds: number | null;
}

export interface GeneratorOptions {
  /**
   * The caller hands the model over to this generator: once the graph holds a quantized model's
   * codes as constants, the host copies are freed (QuantizedParams.releaseCodes), and once the
   * graph's constants are written for ONNX Runtime, their buffers are detached — a float model's
   * weights among them (SessionOptions.releaseConstants) — so the host's copy is gone before ORT
   * loads its own. The model can build no other graph afterwards, and its weight arrays read as
   * empty. Ignored for a model whose scales are folded at build time (they may change and need a rebuild).
   */
  releaseHostCodes?: boolean;
  /**
   * ORT's fused attention and residual-norm kernels where the family allows (default true); false
   * keeps the portable graph the ONNX export writes (benchmarks compare the two).
   */
  fusedKernels?: boolean;
  /**
   * With the fused kernels: the key/value cache lives in buffers of this generator sized for the
   * whole generation, fed as the past on every step, and a step returns only its new rows (default
   * true; kv-graph.ts `fixedCache`). false returns the whole present cache every step (benchmarks).
   */
  fixedCache?: boolean;
}

export class Generator {
  private constructor(
    readonly model: ScoringModel,
    readonly tokenizer: TextTokenizer,
    private step: CompiledGraph,
    private readonly kvHeads: readonly number[],
    /** Weight feeds folded into the graph as constants (PEQA's scales), as they were when it was built. */
    private folded: Record<string, HostTensor> | null,
    private readonly session: SessionOptions,
    private readonly build: StepBuild,
    /** Whether the compiled step takes fixed-capacity caches (the graph's, not only the option's, say). */
    private fixedCache: boolean,
  ) {}

  /**
   * Builds and compiles `model`'s KV graph once. One session runs the prefill (past length 0, the
   * prompt's length of new tokens) and every decode step (one new token): two sessions held each
   * weight twice in ONNX Runtime, and the ONNX bytes of each once more while it was created.
   */
  static async create(model: ScoringModel, tokenizer: TextTokenizer, session: SessionOptions = {}, opts: GeneratorOptions = {}): Promise<Generator> {
    const build = { releaseCodes: opts.releaseHostCodes === true, fused: opts.fusedKernels ?? true, fixedCache: opts.fixedCache ?? true };
    const { step, kvHeads, folded, fixedCache } = await compileStep(model, session, build);
    return new Generator(model, tokenizer, step, kvHeads, folded, session, build, fixedCache);
  }

  /**
   * The weight feeds of a run. Scales folded at build time are checked against the model's current
   * ones first (a page keeps training an adapter between generations): changed scales rebuild the
   * session once, so generation never runs stale weights.
   */
  private async weightFeeds(): Promise<Record<string, HostTensor>> {
    const feeds = this.model.weightFeeds();
    if (!this.folded) return feeds;
    if (sameFeeds(this.folded, feeds)) return {};
    await this.step.release();
    const rebuilt = await compileStep(this.model, this.session, { ...this.build, releaseCodes: false });
    this.step = rebuilt.step;
    this.folded = rebuilt.folded;
    this.fixedCache = rebuilt.fixedCache;
    return {};
  }

  /** Generates from a prompt (text, tokenized as transformers would, or ids). */
  async generate(prompt: string | readonly number[], opts: GenerateOptions): Promise<GenerateResult> {
    const promptIds = typeof prompt === "string" ? this.tokenizer.encodePrompt(prompt) : [...prompt];
    const context = this.model.config.maxPositionEmbeddings;
    if (!Number.isInteger(opts.maxNewTokens) || opts.maxNewTokens < 1) {
      throw new SlimtuneError("E_ARG", `--max-new-tokens ${opts.maxNewTokens} must be a positive integer, e.g. --max-new-tokens 64`);
    }
    if (promptIds.length === 0) throw new SlimtuneError("E_ARG", "the prompt is empty; give some text with --prompt or --prompt-file");
    if (promptIds.length >= context) {
      throw new SlimtuneError("E_ARG", `the prompt has ${promptIds.length} tokens, but the model's context is ${context} (max_position_embeddings), which leaves no room for a new token; shorten the prompt`);
    }
    const vocab = this.model.config.vocabSize;
    if (promptIds.some((id) => !Number.isInteger(id) || id < 0 || id >= vocab)) {
      throw new SlimtuneError("E_ARG", `prompt token ids must lie in [0, ${vocab}) (the model's vocabulary)`);
    }
    const eos = new Set(opts.eosTokenIds ?? defaultEos(this.model, this.tokenizer));
    const rng = new Rng(opts.seed ?? 0);
    const weights = await this.weightFeeds();
    const maxTotal = Math.min(context, promptIds.length + opts.maxNewTokens);
    const ones = new BigInt64Array(maxTotal).fill(1n);
    const stream = new TextStream(this.tokenizer, opts.stop ?? [], opts.onText);

    let started = performance.now();
    let cpuStarted = cpuSeconds();
    const P0 = promptIds.length;
    const cache = new KvCache(this.kvHeads, this.model.config.headDim, this.fixedCache ? maxTotal : 0, P0);
    let out = await this.step.run({
      ...weights,
      ...cache.past(P0),
      [INPUT_IDS]: { data: BigInt64Array.from(promptIds, BigInt), shape: [1, P0] },
      [ATTENTION_MASK]: { data: ones.subarray(0, P0), shape: [1, P0] },
      [POSITION_IDS]: { data: BigInt64Array.from(promptIds, (_, i) => BigInt(i)), shape: [1, P0] },
    });
    const prefillSeconds = (performance.now() - started) / 1000;
    const prefillCpuSeconds = cpuSince(cpuStarted);
    started = performance.now();
    cpuStarted = cpuSeconds();
    const all = [...promptIds];
    const ids: number[] = [];
    let stopReason: GenerateResult["stopReason"] = "length";
    cache.took(out, 0, P0);
    for (;;) {
      const id = nextToken(out[LOGITS]!.data as Float32Array, all, opts, rng);
      ids.push(id);
      all.push(id);
      if (eos.has(id)) {
        stopReason = "eos";
        break;
      }
      if (stream.push(id)) {
        stopReason = "stop";
        break;
      }
      if (ids.length >= opts.maxNewTokens) break;
      if (all.length >= context) {
        stopReason = "context";
        break;
      }
      const P = all.length - 1;
      const feeds: Record<string, HostTensor> = {
        ...weights,
        [INPUT_IDS]: { data: BigInt64Array.of(BigInt(id)), shape: [1, 1] },
        [ATTENTION_MASK]: { data: ones.subarray(0, P + 1), shape: [1, P + 1] },
        [POSITION_IDS]: { data: BigInt64Array.of(BigInt(P)), shape: [1, 1] },
      };
      out = await this.step.run({ ...feeds, ...cache.past(P + 1) });
      cache.took(out, P, 1);
    }
    const decodeSeconds = (performance.now() - started) / 1000;
    const decodeCpuSeconds = cpuSince(cpuStarted);
    const text = stream.finish();
    return {
      promptIds,
      ids,
      text,
      stopReason,
      prefillSeconds,
      decodeSeconds,
      prefillTokensPerS: P0 / prefillSeconds,
      decodeTokensPerS: ids.length > 1 ? (ids.length - 1) / decodeSeconds : 0,
      prefillCpuSeconds,
      decodeCpuSeconds,
    };
  }

  async release(): Promise<void> {
    await this.step.release();
  }
}

/**
 * The model's KV graph for generation, compiled. A quantized model whose scales are graph inputs
 * (PEQA's scoring) gets them folded into MatMulNBits constants at the values fed now: as inputs,
 * every layer was dequantized in the graph on every token (1.1 tok/s at the SmolLM2 shape).
 */
interface StepBuild {
  releaseCodes: boolean;
  fused: boolean;
  fixedCache: boolean;
}

async function compileStep(model: ScoringModel, session: SessionOptions, build: StepBuild): Promise<{ step: CompiledGraph; kvHeads: number[]; folded: Record<string, HostTensor> | null; fixedCache: boolean }> {
  let params = model.params(new Graph());
  let folded: Record<string, HostTensor> | null = null;
  if (params instanceof QuantizedParams && params.takesScaleInputs) {
    folded = snapshot(model.weightFeeds());
    params = params.folded(new Graph(), folded);
  }
  // A model handed over frees each layer's codes as soon as its constants exist (the tables' at once).
  const handOver = build.releaseCodes && !folded;
  if (handOver && params instanceof QuantizedParams) params.releaseCodesAsBuilt();
  // ORT's fused kernels where the family allows (kv-graph.ts `fused`), unless the caller asked for the portable graph.
  const kv = buildKvGraph(model.config, params, { batch: 1, seq: "dynamic", past: true, logits: "last", fused: build.fused, fixedCache: build.fixedCache });
  // The weights travel to ONNX Runtime through a temporary external-data file (in Node), and a model
  // handed over lets go of its constants once they are written, before ORT loads its own copy.
  // Options the caller sets explicitly win (benchmarks compare the paths).
  const step = await CompiledGraph.compile(kv.graph, kv.outputs, { weightsFile: true, ...(handOver ? { releaseConstants: true } : {}), ...session });
  return { step, kvHeads: kv.kvHeads, folded, fixedCache: kv.fixedCache };
}

/** A copy of the feeds' values (training updates them in place). */
function snapshot(feeds: Record<string, HostTensor>): Record<string, HostTensor> {
  return Object.fromEntries(Object.entries(feeds).map(([k, t]) => [k, { data: t.data.slice(), shape: [...t.shape] }]));
}

function sameFeeds(a: Record<string, HostTensor>, b: Record<string, HostTensor>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => {
    const x = a[k]!.data;
    const y = b[k]?.data;
    if (!y || x.length !== y.length) return false;
    for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
    return true;
  });
}

/** This process's CPU seconds so far (user + system, every thread), or null outside Node. */
function cpuSeconds(): number | null {
  const usage = (globalThis as { process?: { cpuUsage?: () => { user: number; system: number } } }).process?.cpuUsage?.();
  return usage ? (usage.user + usage.system) / 1e6 : null;
}

function cpuSince(start: number | null): number | null {
  const now = cpuSeconds();
  return start === null || now === null ? null : now - start;
}

function defaultEos(model: ScoringModel, tokenizer: TextTokenizer): number[] {
  const c = model.config;
  return [...new Set([...(c.eosTokenIds ?? []), ...(c.eosTokenId !== undefined ? [c.eosTokenId] : []), ...(tokenizer.eosTokenId !== undefined ? [tokenizer.eosTokenId] : [])])];
}

/**
 * The generated text, streamed: each new token re-decodes the new ids (byte-level tokens may join
 * into one character), and text is held back while it could still be the start of a stop string
 * or ends in an unfinished character.
 */
class TextStream {
  private readonly ids: number[] = [];
  private text = "";
  private emitted = 0;
  private readonly holdBack: number;

  constructor(
    private readonly tokenizer: TextTokenizer,
    private readonly stops: readonly string[],
    private readonly onText?: (delta: string) => void,
  ) {
    this.holdBack = Math.max(0, ...stops.map((s) => s.length - 1));
  }

  /** Adds a token; true when the text now contains a stop string (the text is cut before it). */
  push(id: number): boolean {
    this.ids.push(id);
    this.text = this.tokenizer.decode(this.ids);
    let cut = -1;
    for (const s of this.stops) {
      const at = s ? this.text.indexOf(s) : -1;
      if (at >= 0 && (cut < 0 || at < cut)) cut = at;
    }
    if (cut >= 0) {
      this.text = this.text.slice(0, cut);
      this.emit(this.text.length);
      return true;
    }
    let safe = this.text.length - this.holdBack;
    if (this.text.endsWith("\uFFFD")) safe = Math.min(safe, this.text.length - 1);
    this.emit(safe);
    return false;
  }

  finish(): string {
    this.emit(this.text.length);
    return this.text;
  }

  private emit(upTo: number): void {
    if (upTo <= this.emitted) return;
    this.onText?.(this.text.slice(this.emitted, upTo));
    this.emitted = upTo;
  }
}

/**
 * One generation's key/value cache between steps. Grown (limit 0): each step feeds back the present
 * caches the last one returned. Fixed: one buffer per layer and half, [1, KV, capacity, D], fed as
 * the past every step; a step's new rows (kv-graph.ts newRowsName) are written into it after the
 * rows before them, head by head, so nothing already cached crosses the binding again. The capacity
 * starts at the prompt plus CACHE_HEADROOM rows and doubles when full, up to `limit` (prompt + max
 * new tokens, at most the context): a generation asked for thousands of tokens that stops at an EOS
 * early does not hold a context-sized cache (4 GiB at the Llama-3.2-1B shape's 128 K).
 */
class KvCache {
  private buffers: Float32Array[] = [];
  private capacity = 0;
  private present: Record<string, HostTensor> = {};

  constructor(
    private readonly kvHeads: readonly number[],
    private readonly headDim: number,
    private readonly limit: number,
    prompt: number,
  ) {
    if (limit > 0) {
      this.resize(Math.min(limit, prompt + CACHE_HEADROOM));
      return;
    }
    const empty = new Float32Array(0);
    kvHeads.forEach((KV, i) => {
      for (const half of HALVES) this.present[pastName(i, half)] = { data: empty, shape: [1, KV, 0, headDim] };
    });
  }

  /** The past feeds of a run that writes rows up to `rows` (exclusive). */
  past(rows: number): Record<string, HostTensor> {
    if (this.limit === 0) return this.present;
    if (rows > this.capacity) this.resize(Math.min(this.limit, Math.max(rows, 2 * this.capacity)));
    const feeds: Record<string, HostTensor> = {};
    this.kvHeads.forEach((KV, i) => {
      HALVES.forEach((half, h) => (feeds[pastName(i, half)] = { data: this.buffers[2 * i + h]!, shape: [1, KV, this.capacity, this.headDim] }));
    });
    return feeds;
  }

  /** Keeps what a run returned: rows [start, start + count) of every layer's cache. */
  took(out: Record<string, HostTensor>, start: number, count: number): void {
    const D = this.headDim;
    this.kvHeads.forEach((KV, i) => {
      HALVES.forEach((half, h) => {
        if (this.limit === 0) {
          this.present[pastName(i, half)] = out[presentName(i, half)]!;
          return;
        }
        const rows = out[newRowsName(i, half)]!.data as Float32Array;
        const buffer = this.buffers[2 * i + h]!;
        for (let head = 0; head < KV; head++) buffer.set(rows.subarray(head * count * D, (head + 1) * count * D), (head * this.capacity + start) * D);
      });
    });
  }

  /** New buffers of `capacity` rows holding every head's rows so far. */
  private resize(capacity: number): void {
    const D = this.headDim;
    const old = this.capacity;
    this.buffers = this.kvHeads.flatMap((KV, i) =>
      HALVES.map((_, h) => {
        const next = new Float32Array(KV * capacity * D);
        const prev = this.buffers[2 * i + h];
        if (prev) for (let head = 0; head < KV; head++) next.set(prev.subarray(head * old * D, (head + 1) * old * D), head * capacity * D);
        return next;
      }),
    );
    this.capacity = capacity;
  }
}

/** Rows a fixed cache holds beyond the prompt before it first grows. */
const CACHE_HEADROOM = 256;
const HALVES = ["key", "value"] as const;
