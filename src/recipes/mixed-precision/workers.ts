// Candidate evaluations in parallel: one worker process per core, each with one ORT thread, fed one
// allocation at a time. Results come back in the order asked, and a worker computes exactly what an
// in-process evaluation with one thread computes, so a parallel run equals a sequential one.

import { type ChildProcess, fork } from "node:child_process";
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { SlimtuneError, type SlimtuneErrorCode } from "../../core/errors.js";
import { LlamaModel } from "../../models/llama/model.js";
import { type Allocation, type BudgetModel, budgetModel } from "../../quant/budget.js";
import { type TrialOutcome, type TrialSetup, createTrialRunner } from "./trial.js";

export type WorkerRequest = { type: "init"; setup: TrialSetup } | { type: "eval"; id: number; bits: Allocation } | { type: "exit" };
export type WorkerReply =
  | { type: "ready"; id: -1 }
  | { type: "result"; id: number; outcome: TrialOutcome }
  | { type: "error"; id: number; code: SlimtuneErrorCode | null; message: string };

export interface TrialEvaluator {
  budget: BudgetModel;
  /** Evaluates every allocation; outcomes in the same order. */
  evaluate(allocs: readonly Allocation[]): Promise<TrialOutcome[]>;
  close(): Promise<void>;
}

/** Evaluations one after another in this process (with the setup's thread count). */
export async function sequentialEvaluator(setup: TrialSetup): Promise<TrialEvaluator> {
  const runner = await createTrialRunner(setup);
  return {
    budget: runner.budget,
    evaluate: async (allocs) => {
      const out: TrialOutcome[] = [];
      for (const a of allocs) out.push(await runner.evaluate(a));
      return out;
    },
    close: async () => {},
  };
}

/**
 * The worker script: trial-worker.js beside this module. Under a TypeScript test runner this module
 * is the .ts source, so the compiled script in dist/ is used (npm test builds it first).
 */
export function defaultWorkerScript(): string {
  const beside = fileURLToPath(new URL("./trial-worker.js", import.meta.url));
  if (fs.existsSync(beside)) return beside;
  const built = beside.replace(/([\\/])src([\\/]recipes[\\/])/, "$1dist$2");
  if (fs.existsSync(built)) return built;
  throw new SlimtuneError("E_NOT_FOUND", `the trial worker script is missing (looked for ${beside} and ${built}); build slimtune first (npx tsc -p tsconfig.build.json)`);
}

const toError = (r: { code: SlimtuneErrorCode | null; message: string }) => (r.code ? new SlimtuneError(r.code, r.message) : new Error(`trial worker failed: ${r.message}`));

/** `workers` processes sharing the evaluations; each loads the model once. */
export async function workerPool(setup: TrialSetup, workers: number, script = defaultWorkerScript()): Promise<TrialEvaluator> {
  if (!(Number.isInteger(workers) && workers >= 1)) throw new SlimtuneError("E_ARG", `--workers ${workers} must be a positive integer`);
  const children: ChildProcess[] = [];
  const handlers = new Map<ChildProcess, (r: WorkerReply) => void>();
  let dead: Error | null = null;
  const spawn = () =>
    new Promise<ChildProcess>((resolve, reject) => {
      const child = fork(script, [], { stdio: ["ignore", "ignore", "inherit", "ipc"], env: { ...process.env } });
      children.push(child);
      handlers.set(child, (r) => (r.type === "ready" ? resolve(child) : r.type === "error" ? reject(toError(r)) : undefined));
      child.on("message", (r: WorkerReply) => handlers.get(child)?.(r));
      child.on("exit", (code, signal) => {
        if (code === 0 || closing) return;
        dead = new Error(`trial worker ${child.pid} exited (${signal ?? `code ${code}`})`);
        handlers.get(child)?.({ type: "error", id: -1, code: null, message: dead.message });
      });
      child.send({ type: "init", setup } satisfies WorkerRequest);
    });
  let closing = false;
  const close = async () => {
    closing = true;
    await Promise.all(
      children.map(
        (c) =>
          new Promise<void>((resolve) => {
            if (c.exitCode !== null || c.signalCode !== null) return resolve();
            c.once("exit", () => resolve());
            c.send({ type: "exit" } satisfies WorkerRequest, (err) => err && c.kill());
          }),
      ),
    );
  };
  let ready: ChildProcess[];
  try {
    ready = await Promise.all(Array.from({ length: workers }, spawn));
  } catch (err) {
    await close();
    throw err;
  }
  // The parent needs the budget arithmetic only, not the data.
  const budget = budgetModel(LlamaModel.load(setup.modelDir), setup.base, setup.choices);
  return {
    budget,
    evaluate: (allocs) =>
      new Promise<TrialOutcome[]>((resolve, reject) => {
        if (dead) return reject(dead);
        const out: TrialOutcome[] = new Array(allocs.length);
        let next = 0;
        let done = 0;
        let failed = false;
        if (allocs.length === 0) return resolve(out);
        const feed = (child: ChildProcess) => {
          if (failed || next >= allocs.length) return;
          const id = next++;
          handlers.set(child, (r) => {
            if (failed) return;
            if (r.type === "error") {
              failed = true;
              reject(toError(r));
              return;
            }
            if (r.type !== "result" || r.id !== id) return;
            out[id] = r.outcome;
            if (++done === allocs.length) resolve(out);
            else feed(child);
          });
          child.send({ type: "eval", id, bits: [...allocs[id]!] } satisfies WorkerRequest);
        };
        for (const c of ready) feed(c);
      }),
    close,
  };
}
