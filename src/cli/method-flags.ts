// `finetune`'s method flags, derived from the method definitions: every flag a method declares
// becomes a CLI flag (shared flags, such as LoRA's --alpha, once), and the chosen method's values
// are parsed from the strings citty hands over.

import type { ArgDef } from "citty";
import { SlimtuneError } from "../core/errors.js";
import { type FlagSpec, type FlagValues, cliName } from "../methods/flags.js";
import type { MethodDefinition } from "../methods/method.js";
import { floatArg, intArg } from "./args.js";

function sameSpec(a: FlagSpec, b: FlagSpec): boolean {
  return a.type === b.type && JSON.stringify(a.default) === JSON.stringify(b.default);
}

/** citty args for every method's flags. Two methods may share a CLI name only with the same type and default. */
export function methodArgs(definitions: readonly MethodDefinition[]): Record<string, ArgDef> {
  const seen = new Map<string, { spec: FlagSpec; owners: string[] }>();
  for (const d of definitions) {
    for (const [key, spec] of Object.entries(d.flags)) {
      const name = cliName(key, spec);
      const prior = seen.get(name);
      if (prior && !sameSpec(prior.spec, spec)) {
        throw new Error(`--${name} is declared by ${prior.owners.join(", ")} and ${d.name} with different types or defaults; give one of them another name`);
      }
      if (prior) prior.owners.push(d.name);
      else seen.set(name, { spec, owners: [d.name] });
    }
  }
  const args: Record<string, ArgDef> = {};
  for (const [name, { spec, owners }] of seen) {
    const description = `${owners.join(", ")}: ${spec.description.replace(/^\w+: /, "")}`;
    if (spec.type === "boolean") args[name] = { type: "boolean", description, default: spec.default };
    else {
      const def = spec.type === "list" ? spec.default.join(",") : spec.default === undefined ? undefined : String(spec.default);
      args[name] = def === undefined ? { type: "string", description } : { type: "string", description, default: def };
    }
  }
  return args;
}

/** The values of `definition`'s flags from parsed CLI args (defaults where a flag was not given). */
export function parseMethodFlags(definition: MethodDefinition, args: Record<string, unknown>): FlagValues<MethodDefinition["flags"]> {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(definition.flags)) {
    const name = cliName(key, spec);
    const raw = args[name];
    switch (spec.type) {
      case "int":
        out[key] = intArg(name, raw as string | undefined, spec.default, spec.min ?? Number.MIN_SAFE_INTEGER);
        break;
      case "float":
        out[key] = floatArg(name, raw as string | undefined, spec.default, spec.min ?? -Infinity);
        break;
      case "boolean":
        out[key] = raw === undefined ? spec.default : raw !== false;
        break;
      case "list": {
        const items = raw === undefined ? [...spec.default] : String(raw).split(",").map((t) => t.trim()).filter(Boolean);
        if (items.length === 0) throw new SlimtuneError("E_ARG", `--${name} is empty; name at least one`);
        out[key] = items;
        break;
      }
      case "string":
        out[key] = raw === undefined ? spec.default : String(raw);
        break;
    }
  }
  return out as FlagValues<MethodDefinition["flags"]>;
}
