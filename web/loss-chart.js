// The page's live loss chart: a Vega-Lite spec compiled once, rendered by a Vega View (SVG) whose
// named data source "points" grows by one row per step (view.insert), so each step re-runs the
// dataflow on the new row instead of rebuilding the chart. Bundled with vega and vega-lite into
// loss-chart.js by scripts/build-web.mjs.
import { View, parse } from "vega";
import { compile } from "vega-lite";

const TRAIN = "training loss (batch)";
const HELD_OUT = "held-out loss";

const encoding = {
  // Whole steps only: at most one tick per step (vega-lite's tickMinStep is not re-evaluated as data arrives).
  x: { field: "step", type: "quantitative", title: "step", axis: { tickCount: { expr: "max(1, min(ceil(width / 40), span(domain('x'))))" } } },
  y: { field: "loss", type: "quantitative", title: "loss (cross-entropy, nats/token)", scale: { zero: false } },
  color: { field: "kind", type: "nominal", title: null, scale: { domain: [TRAIN, HELD_OUT], range: ["#1565c0", "#e65100"] }, legend: { orient: "top-right" } },
  tooltip: [{ field: "step", type: "quantitative" }, { field: "loss", type: "quantitative", format: ".4f" }, { field: "kind", type: "nominal" }],
};

const spec = (width) => ({
  $schema: "https://vega.github.io/schema/vega-lite/v5.json",
  width,
  height: 200,
  // Re-fit the padding on every update: the axis labels grow as losses arrive, and the initial fit (empty chart) would clip them.
  autosize: { type: "pad", resize: true },
  params: [{ name: "heading", value: "loss per step (train to see it)" }],
  title: { text: { expr: "heading" }, anchor: "start", fontSize: 13 },
  data: { name: "points" },
  layer: [
    { transform: [{ filter: `datum.kind === '${TRAIN}'` }], mark: { type: "line", strokeWidth: 2, interpolate: "linear" }, encoding },
    { transform: [{ filter: `datum.kind === '${HELD_OUT}'` }], mark: { type: "point", filled: true, size: 70, opacity: 1 }, encoding },
  ],
});

/** Renders an empty chart into `el`; returns the calls that feed it. */
export async function createLossChart(el) {
  const width = Math.max(300, el.clientWidth - 150);
  const view = new View(parse(compile(spec(width)).spec), { renderer: "svg", container: el, hover: true });
  await view.runAsync();
  const insert = (row) => view.insert("points", [row]).runAsync();
  return {
    view,
    /** Empties the chart for a new run. */
    reset: () => view.remove("points", () => true).signal("heading", "loss per step").runAsync(),
    addStep: (step, loss) => insert({ step, loss, kind: TRAIN }),
    addHeldOut: (step, loss) => insert({ step, loss, kind: HELD_OUT }),
    setHeading: (text) => view.signal("heading", text).runAsync(),
  };
}
