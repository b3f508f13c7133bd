// One shared integer model, many tasks: each task is a set of PEQA scale vectors, and switching
// tasks only swaps the scale inputs fed to the same compiled graphs — nothing is rebuilt.

import { SlimtuneError } from "../../core/errors.js";
import { type GraphCache, GraphCache as Cache } from "../../engine/index.js";
import { type PerplexityOptions, type PerplexityResult, perplexity } from "../../eval/perplexity.js";
import { QuantizedParams } from "../../models/parts/quantized-params.js";
import type { QuantizedModel } from "../../quant/types.js";
import { type PeqaAdapter, loadPeqaAdapter } from "../../formats/peqa-adapter.js";
import { initialScales } from "./index.js";
import type { HostParam } from "../../arch/params.js";
import type { ScoringModel } from "../../models/scoring.js";

export class PeqaTasks {
  private readonly tasks = new Map<string, Record<string, HostParam>>();
  private active: string;
  readonly scoring: ScoringModel;

  constructor(
    readonly model: QuantizedModel,
    readonly cache: GraphCache = new Cache(),
  ) {
    // The base's own scales are a task too: plain RTN.
    this.tasks.set("base", Object.fromEntries(initialScales(model)));
    this.active = "base";
    this.scoring = {
      config: model.config,
      params: (g) => new QuantizedParams(g, model, { scaleInputs: true }),
      weightFeeds: () => this.tasks.get(this.active)!,
      cacheKey: "peqa-tasks",
    };
  }

  /** Registers a task from an adapter folder (checked against this model's codes) or a loaded adapter. */
  add(name: string, adapter: string | PeqaAdapter): void {
    const a = typeof adapter === "string" ? loadPeqaAdapter(adapter, this.model) : adapter;
    this.tasks.set(name, Object.fromEntries(a.scales));
  }

  get names(): string[] {
    return [...this.tasks.keys()];
  }

  get current(): string {
    return this.active;
  }

  /** Makes `name` the active task; returns how long the switch took, in milliseconds. */
  use(name: string): number {
    const started = performance.now();
    if (!this.tasks.has(name)) throw new SlimtuneError("E_ARG", `no task "${name}"; known tasks: ${this.names.join(", ")}`);
    this.active = name;
    return performance.now() - started;
  }

  perplexity(tokens: Int32Array, opts: PerplexityOptions): Promise<PerplexityResult> {
    return perplexity(this.scoring, this.cache, tokens, opts);
  }
}
