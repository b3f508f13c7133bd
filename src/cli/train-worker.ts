// Runs a fine-tuning job in a worker thread so the main thread stays responsive while ONNX Runtime
// holds the worker for seconds per step: the progress line keeps redrawing (elapsed time, ETA,
// memory), and Ctrl-C is answered at once. The first Ctrl-C sets a flag in shared memory that the
// training loop reads after the current step (it then writes a checkpoint and stops); a second one
// ends the worker on the spot (the last periodic checkpoint stays).

import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { SlimtuneError, type SlimtuneErrorCode } from "../core/errors.js";
import { ioError } from "../core/io.js";
import { type FinetuneJob, type FinetuneResult, runFinetuneJob } from "../recipes/finetune-job.js";
import type { StepReport } from "../train/loop.js";
import type { TaskEval } from "../train/task.js";

type FromWorker =
  | { type: "start"; method: string; total: number }
  | { type: "log"; message: string }
  | { type: "step"; report: StepReport; total: number }
  | { type: "eval"; step: number; result: TaskEval }
  | { type: "done"; result: FinetuneResult }
  | { type: "error"; code?: SlimtuneErrorCode; message: string; file?: string };

export interface WorkerHooks {
  onStart?(method: string, total: number): void;
  onStep?(report: StepReport, total: number): void;
  onEval?(step: number, result: TaskEval): void;
  /** Called when the first Ctrl-C arrives (the run stops after the current step). */
  onStopRequested?(): void;
}

/** Runs `job` in a worker thread; resolves with its result, rejects with its error (typed errors stay typed). */
export function runInWorker(job: FinetuneJob, hooks: WorkerHooks = {}): Promise<FinetuneResult> {
  const stop = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(new URL(import.meta.url), { workerData: { job, stop } });
  let requested = false;
  const onSignal = () => {
    if (requested) {
      process.stderr.write("\nstopped; the last periodic checkpoint is kept (resume with --resume)\n");
      // Not worker.terminate() or process.exit(): tearing down ONNX Runtime mid-run aborts the process.
      // Dying of the signal itself (the default action) ends it at once; shells report status 130.
      cleanup();
      process.kill(process.pid, "SIGINT");
    }
    requested = true;
    Atomics.store(stop, 0, 1);
    hooks.onStopRequested?.();
  };
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const cleanup = () => {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  };
  return new Promise((resolve, reject) => {
    worker.on("message", (m: FromWorker) => {
      if (m.type === "start") hooks.onStart?.(m.method, m.total);
      else if (m.type === "log") process.stderr.write(`${m.message}\n`);
      else if (m.type === "step") hooks.onStep?.(m.report, m.total);
      else if (m.type === "eval") hooks.onEval?.(m.step, m.result);
      else if (m.type === "done") {
        cleanup();
        resolve(m.result);
      } else {
        cleanup();
        reject(m.code ? new SlimtuneError(m.code, m.message.replace(m.file ? `${m.file}: ` : "", ""), m.file) : new Error(m.message));
      }
    });
    worker.on("error", (err) => {
      cleanup();
      reject(err);
    });
    worker.on("exit", (code) => {
      cleanup();
      if (code !== 0) reject(new Error(`the training worker exited with code ${code}`));
    });
  });
}

if (!isMainThread && parentPort && (workerData as { job?: FinetuneJob })?.job) {
  const { job, stop } = workerData as { job: FinetuneJob; stop: Int32Array };
  const post = (m: FromWorker) => parentPort!.postMessage(m);
  runFinetuneJob(job, {
    onStart: (method, total) => post({ type: "start", method, total }),
    onLog: (message) => post({ type: "log", message }),
    onStep: (report, total) => post({ type: "step", report, total }),
    onEval: (step, result) => post({ type: "eval", step, result }),
    shouldStop: () => Atomics.load(stop, 0) === 1,
  }).then(
    (result) => post({ type: "done", result }),
    (thrown: unknown) => {
      // A file-system failure (disk full while checkpointing, an unwritable folder) is the user's to fix.
      const errno = thrown as NodeJS.ErrnoException;
      const err = errno?.syscall && errno.path ? ioError(thrown, errno.path, errno.syscall) : thrown;
      const e = err as Error & { code?: SlimtuneErrorCode; file?: string };
      post(err instanceof SlimtuneError ? { type: "error", code: e.code, message: e.message, file: e.file } : { type: "error", message: e.stack ?? String(err) });
    },
  );
}
