// Typed parsing of CLI flag values (citty hands over strings), and the error printer every command shares.

import { SlimtuneError } from "../core/errors.js";

export function intArg(flag: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new SlimtuneError("E_ARG", `--${flag} "${value}" must be an integer >= ${min}`);
  return n;
}

export function floatArg(flag: string, value: string | undefined, fallback: number, min = 0): number {
  if (value === undefined || value === "") return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n < min) throw new SlimtuneError("E_ARG", `--${flag} "${value}" must be a number >= ${min}`);
  return n;
}

export function requiredArg(flag: string, value: string | undefined): string {
  if (!value) throw new SlimtuneError("E_ARG", `--${flag} is required; see slimtune --help`);
  return value;
}

/** Runs a command body, turning user errors into one clear line and exit code 2. */
export async function runAction(body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } catch (e) {
    if (e instanceof SlimtuneError) {
      process.stderr.write(`slimtune: error ${e.code}: ${e.message}\n`);
      process.exitCode = 2;
      return;
    }
    throw e;
  }
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Peak resident memory of this process, MiB. */
export function peakRssMb(): number {
  return process.resourceUsage().maxRSS / 1024;
}

/**
 * Ctrl-C / SIGTERM exit the process (code 130) so that "exit" handlers run: recipes remove their work
 * folders there, and worker processes exit when their parent disconnects. Nothing is published then.
 */
export function exitOnSignal(): void {
  const stop = () => {
    process.stderr.write("\nstopped; nothing was written to --out\n");
    process.exit(130);
  };
  process.once("SIGINT", stop);
  process.once("SIGTERM", stop);
}
