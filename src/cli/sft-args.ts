// `finetune --task sft` flags into a job task: the instruction data's format, chat template,
// which tokens carry loss, what happens to examples longer than --seq, and packing.

import { SlimtuneError } from "../core/errors.js";
import { INSTRUCT_FORMATS, type InstructFormat } from "../data/instruct-records.js";
import { TOO_LONG_POLICIES, type TooLongPolicy } from "../data/sft-examples.js";
import type { JobTask } from "../recipes/finetune-job.js";
import { floatArg, intArg } from "./args.js";

export interface SftFlags {
  seq?: string;
  "held-out"?: string;
  "eval-data"?: string;
  "eval-examples"?: string;
  "data-format"?: string;
  "chat-template"?: string;
  "train-on-prompt"?: boolean;
  "too-long"?: string;
  pack?: boolean;
}

export function dataFormatArg(value: string | undefined): InstructFormat | undefined {
  if (value === undefined || value === "" || value === "auto") return undefined;
  if (!(INSTRUCT_FORMATS as readonly string[]).includes(value)) {
    throw new SlimtuneError("E_ARG", `--data-format "${value}" is not a format; choose auto, ${INSTRUCT_FORMATS.join(", ")}`);
  }
  return value as InstructFormat;
}

export function sftJobTask(args: SftFlags, dataFile: string, batch: number, seed: number): JobTask {
  const tooLong = args["too-long"] ?? "cut-prompt";
  if (!(TOO_LONG_POLICIES as readonly string[]).includes(tooLong)) {
    throw new SlimtuneError("E_ARG", `--too-long "${tooLong}" is not a policy; choose ${TOO_LONG_POLICIES.join(" or ")}`);
  }
  const format = dataFormatArg(args["data-format"]);
  return {
    kind: "sft",
    dataFile,
    ...(args["eval-data"] ? { evalFile: args["eval-data"] } : {}),
    ...(format ? { format } : {}),
    ...(args["chat-template"] ? { chatTemplateFile: args["chat-template"] } : {}),
    trainOnPrompt: Boolean(args["train-on-prompt"]),
    tooLong: tooLong as TooLongPolicy,
    pack: args.pack !== false,
    batch,
    seq: intArg("seq", args.seq, 256, 2),
    heldOut: floatArg("held-out", args["held-out"], 0.05),
    seed,
    ...(args["eval-examples"] ? { evalExamples: intArg("eval-examples", args["eval-examples"], 1) } : {}),
  };
}
