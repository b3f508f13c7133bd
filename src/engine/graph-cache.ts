// Compiled sessions cached by a caller-chosen key (method, shape, …): graphs are built and compiled
// once, then run many times.

import type { GraphOutputs } from "./onnx-writer.js";
import type { Graph } from "./graph.js";
import { CompiledGraph, type SessionOptions } from "./runtime.js";

export class GraphCache {
  private readonly entries = new Map<string, Promise<CompiledGraph>>();

  constructor(private readonly options: SessionOptions = {}) {}

  get(key: string, build: () => { graph: Graph; outputs: GraphOutputs }): Promise<CompiledGraph> {
    let entry = this.entries.get(key);
    if (!entry) {
      const { graph, outputs } = build();
      entry = CompiledGraph.compile(graph, outputs, this.options);
      this.entries.set(key, entry);
      entry.catch(() => this.entries.delete(key));
    }
    return entry;
  }

  async clear(): Promise<void> {
    const all = [...this.entries.values()];
    this.entries.clear();
    for (const e of all) await (await e).release();
  }
}
