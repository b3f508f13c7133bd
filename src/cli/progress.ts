// Progress on stderr: a live bar on a terminal, a plain line every 5 s otherwise, never anything on stdout.

import cliProgress from "cli-progress";

export interface ProgressOptions {
  /** Default process.stderr; stdout is reserved for results and --json. */
  stream?: NodeJS.WriteStream;
  /** false prints nothing (e.g. --quiet). */
  enabled?: boolean;
}

export interface Progress {
  update(done: number, fields?: Record<string, string | number>): void;
  stop(): void;
}

const PLAIN_INTERVAL_MS = 5000;

export function createProgress(label: string, total: number, opts: ProgressOptions = {}): Progress {
  const stream = opts.stream ?? process.stderr;
  if (opts.enabled === false) return { update() {}, stop() {} };
  return stream.isTTY ? barProgress(label, total, stream) : plainProgress(label, total, stream);
}

function barProgress(label: string, total: number, stream: NodeJS.WriteStream): Progress {
  const bar = new cliProgress.SingleBar(
    {
      stream,
      format: `${label} {bar} {value}/{total} eta {eta_formatted}{fields}`,
      hideCursor: true,
      barsize: 30,
      etaBuffer: 50,
    },
    cliProgress.Presets.shades_classic,
  );
  bar.start(total, 0, { fields: "" });
  let stopped = false;
  const progress: Progress = {
    update(done, fields) {
      if (stopped) return;
      bar.update(done, fields ? { fields: formatFields(fields) } : {});
      // A finished bar is final: a redraw after other output (the last eval line) would draw it again below.
      if (done >= total) progress.stop();
    },
    stop() {
      if (stopped) return;
      stopped = true;
      bar.stop();
    },
  };
  return progress;
}

// Pipes and CI logs keep every byte, so a redrawn bar would flood them.
function plainProgress(label: string, total: number, stream: NodeJS.WriteStream): Progress {
  const started = Date.now();
  let lastPrint = started;
  let done = 0;
  let fields = "";
  let stopped = false;
  /** The step count of the last line written: a line is only worth writing for a new one. */
  let printedDone = -1;
  const print = (now: number): void => {
    lastPrint = now;
    printedDone = done;
    const pct = total > 0 ? ` (${Math.floor((100 * done) / total)}%)` : "";
    const elapsed = now - started;
    const eta = done > 0 && done < total ? ` eta ${formatDuration((elapsed * (total - done)) / done)}` : "";
    const took = done >= total ? ` in ${formatDuration(elapsed)}` : "";
    stream.write(`${label} ${done}/${total}${pct}${eta}${took}${fields}\n`);
  };
  const progress: Progress = {
    update(d, f) {
      if (stopped) return;
      done = d;
      if (f) fields = formatFields(f);
      // Callers refresh the same step (finetune redraws every second for memory and ETA); off a
      // TTY that would repeat a line, so only a new step count is printed, at most once per 5 s.
      if (done === printedDone) return;
      const now = Date.now();
      // The total is printed at once and ends the progress: nothing after it repeats that line.
      if (done >= total) progress.stop();
      else if (now - lastPrint >= PLAIN_INTERVAL_MS) print(now);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      // The last update may already be on screen; repeating it would only add noise.
      if (done !== printedDone) print(Date.now());
    },
  };
  return progress;
}

function formatFields(fields: Record<string, string | number>): string {
  let out = "";
  for (const [k, v] of Object.entries(fields)) {
    const s = typeof v === "number" && !Number.isInteger(v) ? v.toPrecision(4) : String(v);
    out += ` ${k} ${s}`;
  }
  return out;
}

function formatDuration(ms: number): string {
  const s = Math.round(ms / 1000);
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m${String(s % 60).padStart(2, "0")}s`;
  return `${Math.floor(m / 60)}h${String(m % 60).padStart(2, "0")}m`;
}
