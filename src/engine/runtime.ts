// Compiles graphs into ONNX Runtime sessions and runs them, on the binding ort-binding.ts chose
// (onnxruntime-node in Node, onnxruntime-web in a page).

import type * as ort from "onnxruntime-common";
import { SlimtuneError } from "../core/errors.js";
import { type DType, type HostArray, type Shape, fmtShape, numel } from "./dtype.js";
import { type SymbolTable, isStaticShape } from "./dims.js";
import type { Graph } from "./graph.js";
import type { Value } from "./graph.js";
import { type GraphOutputs, toOnnxBytes, usedConstants } from "./onnx-writer.js";
import { type OrtBinding, ortBinding } from "./ort-binding.js";

/**
 * Initializer bytes a session file may hold. Protobuf caps an ONNX file at 2 GB; past this, the
 * largest constants (frozen weights) become inputs that every run feeds from memory without a copy.
 */
export const defaultMaxInitializerBytes = 1.75 * 2 ** 30;

export interface HostTensor {
  data: HostArray;
  shape: Shape;
}

export interface SessionOptions {
  /** Threads for one op; defaults to every core (2 here). */
  threads?: number;
  optimization?: "disabled" | "basic" | "extended" | "all";
  /** Session config entries, e.g. { "session.qdq_matmulnbits_accuracy_level": "0" }. */
  config?: Record<string, string>;
  /** ORT's CPU memory arena: faster allocation, but it keeps its high-water mark (default on). */
  memoryArena?: boolean;
  /**
   * ORT's memory-pattern planning (default off here). With it on, the arena held 14.3 GB for a
   * SmolLM2-shape training step of which 5.6 GB was ever used; off, peak RSS fell 12.4 → 7.8 GB
   * there and 1.34 → 0.77 GB on ref-llama-5m, with no measurable change in step time.
   */
  memoryPattern?: boolean;
  /**
   * Run independent branches of the graph at once on this many inter-op threads (ORT's parallel
   * executor), each op then using `threads` intra-op threads. Default 1: one op at a time.
   */
  interOpThreads?: number;
  /** Constants past this many bytes in all are fed as inputs instead (default 1.75 GiB; see above). */
  maxInitializerBytes?: number;
  /** ORT's per-node profiling: a JSON trace written to files starting with this prefix (benchmarks). */
  profilePrefix?: string;
  /**
   * Write initializers of at least 4 KiB as ONNX external data into a temporary folder (removed once
   * the session exists, or on failure) and create the session from the file's path, instead of from
   * one in-memory ModelProto ORT parses into a copy. Only with onnxruntime-node; ignored in a page.
   */
  weightsFile?: boolean;
  /**
   * The caller hands the graph's constants over: once they are serialized (into the ONNX bytes or the
   * external data file), their host buffers are detached so the memory can go before ONNX Runtime
   * builds its own copy. Every typed array over those buffers reads as empty afterwards.
   */
  releaseConstants?: boolean;
  /** Called as compilation passes each stage ("runtime loaded", "serialized", "constants released", "session created"); benchmarks read memory there. */
  trace?: (stage: string) => void;
}

/** Initializers from one page on go to the external data file with `weightsFile`; smaller ones stay inline (4-bit layers of a small model are often under 1 MiB each). */
const EXTERNAL_MIN_BYTES = 4096;

const ortType: Record<DType, ort.Tensor.Type> = {
  float32: "float32",
  float16: "float16",
  float64: "float64",
  int64: "int64",
  int32: "int32",
  int16: "int16",
  int8: "int8",
  uint8: "uint8",
  bool: "bool",
};

/** A graph turned into an ONNX Runtime session, with its input and output signatures. */
export class CompiledGraph {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly inputs: ReadonlyMap<string, { shape: Shape; dtype: DType }>,
    readonly outputNames: readonly string[],
    readonly onnxBytes: number,
    /** Checks the sizes fed for symbolic dims; null for static graphs. */
    private readonly dims: SymbolTable | null,
    /** Constants lifted out of the file (see maxInitializerBytes), fed by every run. */
    private readonly liftedFeeds: Readonly<Record<string, ort.Tensor>>,
    private readonly binding: OrtBinding,
  ) {}

  static async compile(graph: Graph, outputs: GraphOutputs, opts: SessionOptions = {}): Promise<CompiledGraph> {
    const constants = usedConstants(graph, outputs);
    const lifted = constantsToLift(constants, opts.maxInitializerBytes ?? defaultMaxInitializerBytes);
    const binding = await ortBinding();
    const liftedFeeds = Object.fromEntries([...lifted].map((c) => [c.name!, new binding.Tensor(ortType[c.dtype], c.data as never, c.shape as number[])]));
    const sessionOptions = ortSessionOptions(graph, opts, binding);
    const trace = opts.trace ?? (() => {});
    trace("runtime loaded");
    // Lifted constants are fed by every run, so they are never released.
    const handOver = (collect?: () => void) => {
      if (opts.releaseConstants) {
        detachBuffers(
          constants.filter((c) => !lifted.has(c)).map((c) => c.data as HostArray),
          [...lifted].map((c) => c.data as HostArray),
        );
        collect?.();
      }
      trace("constants released");
    };
    const create = async (source: string | Uint8Array) => {
      try {
        const session = await binding.InferenceSession.create(source as never, sessionOptions);
        trace("session created");
        return session;
      } catch (e) {
        throw new SlimtuneError("E_ENGINE", `ONNX Runtime rejected a generated graph: ${(e as Error).message}`);
      }
    };
    let session: ort.InferenceSession;
    let onnxBytes: number;
    if (opts.weightsFile && opensFiles(binding)) {
      const { withExternalDataFile, collectGarbage } = await import("./session-file.js");
      session = await withExternalDataFile(
        EXTERNAL_MIN_BYTES,
        (external) => toOnnxBytes(graph, outputs, lifted, external),
        async (modelPath, bytesWritten) => {
          onnxBytes = bytesWritten;
          trace("serialized");
          handOver(collectGarbage);
          return create(modelPath);
        },
      );
    } else {
      const bytes = toOnnxBytes(graph, outputs, lifted);
      onnxBytes = bytes.byteLength;
      trace("serialized");
      handOver();
      session = await create(bytes);
    }
    const inputs = new Map(graph.inputs.map((v) => [v.name!, { shape: v.shape, dtype: v.dtype }]));
    const symbolic = graph.inputs.some((v) => !isStaticShape(v.shape));
    return new CompiledGraph(session, inputs, Object.keys(outputs), onnxBytes!, symbolic ? graph.dims : null, liftedFeeds, binding);
  }

  /**
   * Runs the graph; every declared input must be fed with its exact shape. Inputs with symbolic
   * dims take any size there, as long as every symbol has one value across all feeds.
   *
   * `into` names outputs ONNX Runtime writes into the caller's buffers (exact shape and type), which
   * are then returned as that output: a training step reuses its gradient buffers every step
   * instead of leaving ORT to hold every gradient too. onnxruntime-node (1.30 and 1.31) still hands back a fresh
   * copy of each such output (measured: arrayBuffers grows by its size); it is dropped here at once.
   */
  async run(
    feeds: Record<string, HostTensor>,
    outputs: readonly string[] = this.outputNames,
    into: Readonly<Record<string, HostTensor>> = {},
  ): Promise<Record<string, HostTensor>> {
    const ortFeeds: Record<string, ort.Tensor> = { ...this.liftedFeeds };
    const bound = new Map<string, number>();
    const compound: Array<() => void> = [];
    for (const [name, sig] of this.inputs) {
      const t = feeds[name];
      if (!t) throw new SlimtuneError("E_ENGINE", `missing feed "${name}" ${fmtShape(sig.shape)}`);
      const dims = this.dims && !isStaticShape(sig.shape) ? this.bindDims(name, sig.shape, t, bound, compound) : sig.shape;
      if (t.data.length !== numel(dims)) {
        throw new SlimtuneError("E_ENGINE", `feed "${name}" has ${t.data.length} values; the graph expects ${fmtShape(dims)}`);
      }
      ortFeeds[name] = new this.binding.Tensor(ortType[sig.dtype], t.data as never, dims as number[]);
    }
    for (const check of compound) check();
    const preallocated = outputs.some((name) => into[name]);
    const fetches = preallocated
      ? Object.fromEntries(outputs.map((name) => [name, into[name] ? new this.binding.Tensor(into[name].data as never, into[name].shape as number[]) : null]))
      : (outputs as string[]);
    const result = await this.session.run(ortFeeds, fetches);
    const out: Record<string, HostTensor> = {};
    for (const name of outputs) {
      const t = result[name]!;
      out[name] = into[name] ?? { data: t.data as HostArray, shape: t.dims };
    }
    return out;
  }

  /** The feed's own shape, checked against the signature and the sizes symbols already have. */
  private bindDims(name: string, sig: Shape, t: HostTensor, bound: Map<string, number>, compound: Array<() => void>): Shape {
    const dims = this.dims!;
    const bad = () => new SlimtuneError("E_ENGINE", `feed "${name}" has shape ${fmtShape(t.shape)}; the graph expects [${sig.map((d) => (d < 0 ? dims.name(d) : d)).join(", ")}]`);
    if (t.shape.length !== sig.length) throw bad();
    sig.forEach((d, i) => {
      const size = t.shape[i]!;
      if (d >= 0) {
        if (size !== d) throw bad();
        return;
      }
      const base = dims.baseName(d);
      if (base !== null && !bound.has(base)) bound.set(base, size);
      // A compound dim (past + seq) is checked once every feed has bound its symbols.
      compound.push(() => {
        if (dims.evaluate(d, bound) !== size) throw bad();
      });
    });
    return t.shape;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}

function ortSessionOptions(graph: Graph, opts: SessionOptions, binding: OrtBinding): ort.InferenceSession.SessionOptions {
  const config = { ...opts.config };
  if (graph.disabledOptimizers.size > 0) {
    const prior = config["optimization.disable_specified_optimizers"];
    config["optimization.disable_specified_optimizers"] = [...(prior ? prior.split(";") : []), ...graph.disabledOptimizers].join(";");
  }
  return {
    intraOpNumThreads: opts.threads ?? 0,
    interOpNumThreads: opts.interOpThreads ?? 1,
    executionMode: (opts.interOpThreads ?? 1) > 1 ? "parallel" : "sequential",
    graphOptimizationLevel: opts.optimization ?? "all",
    enableCpuMemArena: opts.memoryArena ?? true,
    enableMemPattern: opts.memoryPattern ?? false,
    ...(opts.profilePrefix ? { enableProfiling: true, profileFilePrefix: opts.profilePrefix } : {}),
    ...(Object.keys(config).length > 0 ? { extra: { ...nestConfig(config) } } : {}),
    ...(binding.executionProviders ? { executionProviders: [...binding.executionProviders] } : {}),
  };
}

/**
 * Whether the binding creates sessions from a file path: onnxruntime-node does (it is the binding
 * that names no execution providers); onnxruntime-web in a page fetches URLs instead.
 */
function opensFiles(binding: OrtBinding): boolean {
  const node = (globalThis as { process?: { versions?: { node?: string } } }).process?.versions?.node;
  return binding.executionProviders === undefined && node !== undefined;
}

/**
 * Detaches each array's buffer (moving it into a clone nobody keeps), so the memory is freed at the
 * next collection even while other objects still hold views of it. SharedArrayBuffers, detached
 * buffers and the buffers of `keep` (views into one loaded file may back a lifted constant too) are
 * left alone.
 */
function detachBuffers(arrays: readonly HostArray[], keep: readonly HostArray[]): void {
  const kept = new Set(keep.map((a) => a.buffer));
  const buffers = new Set<ArrayBuffer>();
  for (const a of arrays) if (a.buffer instanceof ArrayBuffer && a.buffer.byteLength > 0 && !kept.has(a.buffer)) buffers.add(a.buffer);
  for (const b of buffers) structuredClone(b, { transfer: [b] });
}

/** "session.x" → { session: { x } }, the shape onnxruntime's `extra` option takes. */
function nestConfig(config: Record<string, string>): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [key, value] of Object.entries(config)) {
    const dot = key.indexOf(".");
    const group = key.slice(0, dot);
    (out[group] ??= {})[key.slice(dot + 1)] = value;
  }
  return out;
}

/** The largest constants, until the rest fit in `maxBytes`. */
function constantsToLift(constants: readonly Value[], maxBytes: number): Set<Value> {
  const bytesOf = (c: Value) => (c.data as HostArray).byteLength;
  let total = constants.reduce((t, c) => t + bytesOf(c), 0);
  const lifted = new Set<Value>();
  if (total <= maxBytes) return lifted;
  for (const c of [...constants].sort((a, b) => bytesOf(b) - bytesOf(a))) {
    if (total <= maxBytes) break;
    lifted.add(c);
    total -= bytesOf(c);
  }
  return lifted;
}
