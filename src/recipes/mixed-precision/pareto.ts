// The Pareto front of evaluated allocations (bytes against loss, both lower is better), as JSON and
// as an SVG scatter plot with the front drawn through it.

export interface ParetoPoint {
  bytes: number;
  loss: number;
  label: string;
  /** "bo", "start", "random", "uniform", …: points are coloured by it. */
  origin: string;
}

/** Indices of the points no other point dominates (≤ bytes and ≤ loss, one strictly), by bytes. */
export function paretoFront(points: readonly ParetoPoint[]): number[] {
  const order = points.map((_, i) => i).sort((a, b) => points[a]!.bytes - points[b]!.bytes || points[a]!.loss - points[b]!.loss);
  const front: number[] = [];
  let bestLoss = Infinity;
  for (const i of order) {
    if (points[i]!.loss < bestLoss) {
      front.push(i);
      bestLoss = points[i]!.loss;
    }
  }
  return front;
}

/** True when some point of `front` has ≤ bytes and ≤ loss than `p`. */
export function dominatedBy(front: readonly ParetoPoint[], p: ParetoPoint): boolean {
  return front.some((f) => f.bytes <= p.bytes && f.loss <= p.loss);
}

const COLORS: Record<string, string> = { bo: "#1f77b4", start: "#2ca02c", random: "#7f7f7f", uniform: "#d62728", final: "#9467bd" };
const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

/** A self-contained SVG: every point, the front as a step line, the budget as a dashed line. */
export function paretoSvg(points: readonly ParetoPoint[], opts: { title: string; budgetBytes?: number; lossLabel?: string }): string {
  const W = 720;
  const H = 460;
  const m = { l: 80, r: 160, t: 40, b: 60 };
  const xs = points.map((p) => p.bytes / 1e6).concat(opts.budgetBytes ? [opts.budgetBytes / 1e6] : []);
  const ys = points.map((p) => p.loss);
  const pad = (lo: number, hi: number) => (hi > lo ? [lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)] : [lo - 1, hi + 1]) as [number, number];
  const [x0, x1] = pad(Math.min(...xs), Math.max(...xs));
  const [y0, y1] = pad(Math.min(...ys), Math.max(...ys));
  const X = (v: number) => m.l + ((v - x0) / (x1 - x0)) * (W - m.l - m.r);
  const Y = (v: number) => H - m.b - ((v - y0) / (y1 - y0)) * (H - m.t - m.b);
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="white"/>`,
    `<text x="${W / 2 - m.r / 2}" y="22" text-anchor="middle" font-size="14">${esc(opts.title)}</text>`,
    `<line x1="${m.l}" y1="${H - m.b}" x2="${W - m.r}" y2="${H - m.b}" stroke="black"/>`,
    `<line x1="${m.l}" y1="${m.t}" x2="${m.l}" y2="${H - m.b}" stroke="black"/>`,
    `<text x="${(m.l + W - m.r) / 2}" y="${H - 18}" text-anchor="middle">stored bytes (MB)</text>`,
    `<text x="18" y="${(m.t + H - m.b) / 2}" text-anchor="middle" transform="rotate(-90 18 ${(m.t + H - m.b) / 2})">${esc(opts.lossLabel ?? "held-out loss")}</text>`,
  ];
  for (let i = 0; i <= 5; i++) {
    const xv = x0 + ((x1 - x0) * i) / 5;
    const yv = y0 + ((y1 - y0) * i) / 5;
    out.push(`<text x="${X(xv)}" y="${H - m.b + 16}" text-anchor="middle">${xv.toFixed(3)}</text>`);
    out.push(`<text x="${m.l - 6}" y="${Y(yv) + 4}" text-anchor="end">${yv.toFixed(4)}</text>`);
  }
  if (opts.budgetBytes) {
    const bx = X(opts.budgetBytes / 1e6);
    out.push(`<line x1="${bx}" y1="${m.t}" x2="${bx}" y2="${H - m.b}" stroke="#999" stroke-dasharray="5,4"/><text x="${bx + 4}" y="${m.t + 12}" fill="#666">budget</text>`);
  }
  const front = paretoFront(points).map((i) => points[i]!);
  if (front.length > 1) {
    const d = front.map((p, i) => `${i === 0 ? "M" : "L"}${X(p.bytes / 1e6).toFixed(1)},${Y(p.loss).toFixed(1)}`).join(" ");
    out.push(`<path d="${d}" fill="none" stroke="black" stroke-width="1.5"/>`);
  }
  for (const p of points) {
    const c = COLORS[p.origin] ?? "#8c564b";
    out.push(`<circle cx="${X(p.bytes / 1e6).toFixed(1)}" cy="${Y(p.loss).toFixed(1)}" r="${p.origin === "uniform" ? 6 : 4}" fill="${c}" fill-opacity="0.8"><title>${esc(`${p.label}: ${(p.bytes / 1e6).toFixed(3)} MB, loss ${p.loss.toFixed(5)}`)}</title></circle>`);
    if (p.origin === "uniform") out.push(`<text x="${X(p.bytes / 1e6) + 8}" y="${Y(p.loss) - 6}" fill="${c}">${esc(p.label)}</text>`);
  }
  const origins = [...new Set(points.map((p) => p.origin))];
  origins.forEach((o, i) => {
    const y = m.t + 20 * i;
    out.push(`<circle cx="${W - m.r + 20}" cy="${y}" r="5" fill="${COLORS[o] ?? "#8c564b"}"/><text x="${W - m.r + 32}" y="${y + 4}">${esc(o)}</text>`);
  });
  out.push(`<line x1="${W - m.r + 12}" y1="${m.t + 20 * origins.length}" x2="${W - m.r + 28}" y2="${m.t + 20 * origins.length}" stroke="black" stroke-width="1.5"/><text x="${W - m.r + 32}" y="${m.t + 20 * origins.length + 4}">Pareto front</text>`);
  out.push("</svg>");
  return `${out.join("\n")}\n`;
}
