// The page's script: wires the controls to slimtune/web (slimtune-web.js, bundled beside it).
// Every action reports progress and errors in #status, never only in the console.
import * as slimtune from "./slimtune-web.js";

const $ = (id) => document.getElementById(id);
const state = { session: null, runtime: null, losses: [], busy: false };
// The browser tests drive the same objects the controls use.
window.slimtuneApp = { slimtune, state, loadFiles, ready: null };

function status(text, error = false) {
  const el = $("status");
  el.textContent = text;
  el.className = error ? "error" : "";
}

const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

/** Runs an action with the controls locked; its error is shown in the page. */
async function guarded(label, action) {
  if (state.busy) return;
  state.busy = true;
  setButtons();
  try {
    status(`${label}…`);
    await action();
  } catch (e) {
    status(`${label} failed: ${e?.code ? `${e.code}: ` : ""}${e?.message ?? e}`, true);
    console.error(e);
  } finally {
    state.busy = false;
    setButtons();
  }
}

function setButtons() {
  const s = state.session;
  $("quantize").disabled = state.busy || !s || s.isQuantized;
  $("train").disabled = state.busy || !s;
  $("generate").disabled = state.busy || !s;
  $("download-adapter").disabled = state.busy || !s || s.adapterNames.length === 0;
}

async function loadFiles(files) {
  const session = slimtune.WebSession.open(files, {});
  state.session?.release();
  state.session = session;
  state.losses = [];
  drawChart();
  const c = session.model.config;
  $("model-info").textContent =
    `${(session.parameterCount / 1e6).toFixed(1)} M parameters, ${c.numLayers} layers, files ${mib(session.fileBytes)}, float32 in memory ${mib(session.parameterCount * 4)}`;
  renderAdapters();
  status(`Model loaded. Engine: onnxruntime-web ${state.runtime.executionProvider}${state.runtime.note}, ${state.runtime.threads} thread(s)${state.runtime.crossOriginIsolated ? "" : " (page not cross-origin isolated)"}.`);
}

async function pickedFiles(input) {
  await guarded("Reading the model", async () => loadFiles(await slimtune.filesFromPicked(input.files)));
}

function drawChart() {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const { width: w, height: h } = canvas;
  ctx.clearRect(0, 0, w, h);
  const ys = state.losses;
  ctx.fillStyle = "#555";
  ctx.font = "12px sans-serif";
  if (ys.length === 0) {
    ctx.fillText("loss appears here while training", 10, 20);
    return;
  }
  const lo = Math.min(...ys);
  const hi = Math.max(...ys);
  const pad = 40;
  const x = (i) => pad + ((w - pad - 10) * i) / Math.max(1, ys.length - 1);
  const y = (v) => 10 + (h - 30) * (hi === lo ? 0.5 : (hi - v) / (hi - lo));
  ctx.strokeStyle = "#ccc";
  ctx.beginPath();
  ctx.moveTo(pad, 10);
  ctx.lineTo(pad, h - 20);
  ctx.lineTo(w - 10, h - 20);
  ctx.stroke();
  ctx.fillText(hi.toFixed(3), 2, 14);
  ctx.fillText(lo.toFixed(3), 2, h - 22);
  ctx.fillText(`step ${ys.length}`, w - 60, h - 5);
  ctx.strokeStyle = "#1565c0";
  ctx.lineWidth = 2;
  ctx.beginPath();
  ys.forEach((v, i) => (i === 0 ? ctx.moveTo(x(i), y(v)) : ctx.lineTo(x(i), y(v))));
  ctx.stroke();
}

function renderAdapters() {
  const s = state.session;
  const box = $("adapters");
  box.textContent = "";
  if (!s || s.adapterNames.length === 0) {
    box.textContent = "none yet (train one; it is kept under its name)";
    return;
  }
  for (const name of ["(base)", ...s.adapterNames]) {
    const label = document.createElement("label");
    const radio = document.createElement("input");
    radio.type = "radio";
    radio.name = "adapter";
    radio.value = name;
    radio.checked = name === state.active;
    radio.addEventListener("change", () => {
      if (name === "(base)") s.useBase();
      else s.useAdapter(name);
      state.active = name;
      status(`Active: ${name}`);
    });
    label.append(radio, ` ${name}`);
    box.append(label);
  }
}

function download(name, chunks) {
  const url = URL.createObjectURL(new Blob(chunks));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

const num = (id) => Number($(id).value);

$("pick-folder").addEventListener("change", (e) => pickedFiles(e.target));
$("pick-files").addEventListener("change", (e) => pickedFiles(e.target));
$("pick-text").addEventListener("change", async (e) => {
  const f = e.target.files[0];
  if (f) $("text").value = await f.text();
});

$("quantize").addEventListener("click", () =>
  guarded("Quantizing", async () => {
    const group = $("group").value;
    const s = state.session;
    s.quantize({ scheme: "rtn", bits: 4, groupSize: group === "channel" ? "channel" : Number(group), symmetric: false });
    $("quant-info").textContent = `4-bit RTN, group ${group}: ${mib(s.quantizedBytes)} (float32 ${mib(s.parameterCount * 4)})`;
    status("Quantized. PEQA trains its scales; LoRA trains on the float model.");
  }),
);

$("train").addEventListener("click", () =>
  guarded("Training", async () => {
    const s = state.session;
    const method = $("method").value;
    const steps = num("steps");
    const opts = { ...slimtune.defaultWebTrainOptions, steps, lr: num("lr"), batch: num("batch"), seq: num("seq") };
    const text = $("text").value;
    s.startTraining(method, text, opts);
    state.losses = [];
    for (let i = 0; i < steps; i++) {
      const r = await s.trainStep();
      state.losses.push(r.loss);
      drawChart();
      $("train-info").textContent = ` step ${r.step}/${steps}: loss ${r.loss.toFixed(4)}, ${r.tokensPerSecond.toFixed(0)} tokens/s`;
      status(`Training ${method}: step ${r.step}/${steps}`);
      await new Promise((done) => setTimeout(done, 0));
    }
    const name = $("adapter-name").value.trim() || `${method}-${s.adapterNames.length + 1}`;
    s.keepAdapter(name);
    state.active = name;
    renderAdapters();
    status(`Trained ${steps} ${method} steps; kept as adapter "${name}".`);
  }),
);

$("generate").addEventListener("click", () =>
  guarded("Generating", async () => {
    const r = await state.session.generate($("prompt").value, num("max-new"));
    $("output").textContent = $("prompt").value + r.text;
    status(`Generated ${r.ids.length} tokens (${r.decodeTokensPerS.toFixed(0)} tokens/s decode) with ${state.active ?? "(base)"}.`);
  }),
);

$("download-adapter").addEventListener("click", () =>
  guarded("Preparing the adapter", async () => {
    const name = state.active && state.active !== "(base)" ? state.active : undefined;
    for (const [file, chunks] of state.session.adapterFiles(name)) download(file, chunks);
    status("Adapter files downloaded (put them in one folder; eval --adapter reads it).");
  }),
);

window.slimtuneApp.ready = (async () => {
  try {
    const params = new URLSearchParams(location.search);
    // WebGPU only when asked for (?ep=webgpu) and the browser has an adapter; WASM otherwise.
    let ep = params.get("ep") === "webgpu" ? "webgpu" : "wasm";
    let note = "";
    if (ep === "webgpu" && !(await navigator.gpu?.requestAdapter().catch(() => null))) {
      ep = "wasm";
      note = " (WebGPU was asked for, but this browser offers no WebGPU adapter)";
    }
    state.runtime = slimtune.useOnnxRuntimeWeb({ wasmPaths: new URL("./", location.href).href, executionProvider: ep, ...(params.get("threads") ? { threads: Number(params.get("threads")) } : {}) });
    state.runtime.note = note;
    status(`Ready: onnxruntime-web ${state.runtime.executionProvider}${note}, ${state.runtime.threads} thread(s). Pick a model folder.`);
    const model = params.get("model");
    if (model) await guarded("Fetching the model", async () => loadFiles(await slimtune.fetchModelFiles(model.endsWith("/") ? model : `${model}/`)));
  } catch (e) {
    status(`Start-up failed: ${e?.message ?? e}`, true);
  }
  setButtons();
  drawChart();
})();
