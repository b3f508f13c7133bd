// Types for readers.mjs (plain JS, so bench/fuzz-readers.mjs runs it on dist/ without a build step).
import type { Arbitrary } from "fast-check";
import type fc from "fast-check";

export type Mutation = { kind: string; file: number } & Record<string, unknown>;

export interface PreparedReader {
  arbitrary: Arbitrary<Mutation>;
  write(m: Mutation, caseDir: string): void;
  /** "accepted", or the code of the SlimtuneError thrown; anything else is rethrown. */
  run(m: Mutation, caseDir: string): Promise<string>;
}

export declare function prepareReader(lib: Record<string, unknown>, fastCheck: typeof fc, name: string, workDir: string): Promise<PreparedReader>;
export declare const readerNames: string[];
