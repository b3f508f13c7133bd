// What report.json holds: one run of one command (what was done, with which options, and what came
// out), in a shape `slimtune report` and `slimtune run` can compare across runs.

/** A quality number the command measured, before and after its work where it measured both. */
export interface Quality {
  /** e.g. "accuracy", "held-out loss", "calibration loss", "perplexity". */
  metric: string;
  before: number | null;
  after: number | null;
  higherIsBetter: boolean;
  /** What it was measured on, in words (a file, "held-out tail of --data"). */
  on?: string;
}

/** One linear layer of the written model: its size and bits. */
export interface LinearRow {
  layer: number;
  module: string;
  outFeatures: number;
  inFeatures: number;
  /** Bits per weight of its codes; null for a float layer. */
  bits: number | null;
}

/** One part of a decoder layer that structured pruning cuts: how many units were kept. */
export interface WidthRow {
  layer: number;
  part: "attention heads" | "key/value heads" | "MLP channels";
  before: number;
  after: number;
}

export interface CurvePoint {
  step: number;
  series: string;
  value: number;
}

/** A mixed-precision trial (quantize with a budget, qpruner): stored bytes against its loss. */
export interface TrialPoint {
  index: number;
  bytes: number;
  loss: number;
  avgBits: number;
  fitsBudget: boolean;
  onFront: boolean;
  origin: string;
}

export interface RunReport {
  slimtune_report: 1;
  command: string;
  /** The command line as typed after `slimtune` (flags and values). */
  commandLine: string[];
  created: string;
  /** The folder or file the command wrote. */
  out: string;
  /** Options of the run (the command's resolved flags, defaults included). */
  options: Record<string, unknown>;
  /** The options set on the command line (the rest are defaults). */
  given: string[];
  /** Served bytes: the weight files a runtime loads (model and adapter, the base model too when the run wrote only an adapter; checkpoints excluded). */
  servedBytes: number | null;
  /** The base model counted in servedBytes (the run wrote only an adapter), else null. */
  baseModel: string | null;
  /** Parameters of the written model, when the command counted them. */
  parameters: number | null;
  quality: Quality | null;
  linears: LinearRow[];
  widths: WidthRow[];
  curves: CurvePoint[];
  trials: TrialPoint[];
  budgetBytes: number | null;
  /** Ids of the charts report.html shows (each a <figure data-chart="id"> holding one SVG). */
  charts: string[];
  /** The command's own summary (what it prints with --json). */
  summary: Record<string, unknown>;
}
