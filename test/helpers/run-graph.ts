// Runs a small hand-built graph once and returns its outputs as plain numbers (booleans as 0/1,
// int64 as numbers), for tests that compare an op's values with hand-worked ones.

import { CompiledGraph, type Graph, type HostTensor, type Value } from "../../src/engine/index.js";

export async function runGraphOnce(g: Graph, outputs: Record<string, Value>, feeds: Record<string, HostTensor>): Promise<Record<string, { shape: number[]; data: number[] }>> {
  const compiled = await CompiledGraph.compile(g, outputs, { threads: 1 });
  try {
    const out = await compiled.run(feeds);
    return Object.fromEntries(Object.entries(out).map(([k, v]) => [k, { shape: [...v.shape], data: Array.from(v.data as ArrayLike<number | bigint | boolean>, (x) => Number(x)) }]));
  } finally {
    await compiled.release();
  }
}
