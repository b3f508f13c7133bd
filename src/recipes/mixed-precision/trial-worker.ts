// A worker process of the trial pool (workers.ts): builds the same trial runner as an in-process
// evaluation from the setup it is sent, then evaluates one allocation per message, one ORT thread.

import { SlimtuneError } from "../../core/errors.js";
import type { TrialRunner } from "./trial.js";
import { createTrialRunner } from "./trial.js";
import type { WorkerReply, WorkerRequest } from "./workers.js";

let runner: Promise<TrialRunner> | null = null;
// The parent may be gone by the time a trial ends (Ctrl-C): then there is no one to answer.
const send = (m: WorkerReply) => {
  if (process.connected) process.send!(m, (err: Error | null) => err && process.exit(0));
};
const failure = (id: number, err: unknown): WorkerReply => ({
  type: "error",
  id,
  code: err instanceof SlimtuneError ? err.code : null,
  message: err instanceof Error ? (err instanceof SlimtuneError ? err.message : (err.stack ?? err.message)) : String(err),
});

// The parent went away (finished, or stopped with Ctrl-C): nothing is left to evaluate for.
process.on("disconnect", () => process.exit(0));

process.on("message", (msg: WorkerRequest) => {
  if (msg.type === "init") {
    runner = createTrialRunner(msg.setup);
    runner.then(
      () => send({ type: "ready", id: -1 }),
      (err: unknown) => send(failure(-1, err)),
    );
    return;
  }
  if (msg.type === "eval") {
    void (async () => {
      try {
        const outcome = await (await runner!).evaluate(msg.bits);
        send({ type: "result", id: msg.id, outcome });
      } catch (err) {
        send(failure(msg.id, err));
      }
    })();
    return;
  }
  process.exit(0);
});
