// Typed parsing of CLI flag values (citty hands over strings), and the error printer every command shares.

import { SlimtuneError } from "../core/errors.js";
import { ioError } from "../core/io.js";

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
    reportError(e);
  }
}

/**
 * Prints an error as one line with its code and sets exit code 2. A file-system failure that escaped
 * as a Node error (it has a syscall and a path) is typed here too. Anything else is a bug: its stack
 * is printed and the exit code is 1.
 */
export function reportError(e: unknown): void {
  const errno = e as NodeJS.ErrnoException;
  const typed = e instanceof SlimtuneError ? e : errno?.syscall && errno.path ? ioError(e, errno.path, errno.syscall) : null;
  if (typed) {
    process.stderr.write(`slimtune: error ${typed.code}: ${typed.message}\n`);
    process.exitCode = 2;
    return;
  }
  process.stderr.write(`slimtune: internal error (please report it): ${(e as Error)?.stack ?? String(e)}\n`);
  process.exitCode = 1;
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
