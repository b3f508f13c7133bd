// The page's script: wires the controls to slimtune/web (slimtune-web.js, bundled beside it).
// Every action reports progress and errors in #status, never only in the console.
import * as slimtune from "./slimtune-web.js";
import { createLossChart } from "./loss-chart.js";

const $ = (id) => document.getElementById(id);
// dataSource: the picked data file's name (errors name it), or null for pasted text.
const state = { session: null, runtime: null, chart: null, busy: false, dataSource: null };
// The browser tests drive the same objects the controls use.
window.slimtuneApp = { slimtune, state, loadFiles, loadGguf, ready: null };

function status(text, error = false) {
  const el = $("status");
  el.textContent = text;
  el.className = error ? "error" : "";
}

const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const gib = (bytes) => `${(bytes / 2 ** 30).toFixed(2)} GiB`;

/** The training shape the memory estimate is for: the controls' batch, seq and group, the page's LoRA rank. */
function currentRun() {
  const group = $("group").value;
  return { batch: num("batch"), seq: num("seq"), groupSize: group === "channel" ? "channel" : Number(group), loraRank: 8 };
}

/**
 * Checks `config` against the page's memory limit before anything large is read or trained: lists
 * what each method needs in #limits, and throws (shown in #status and #limits) when `method` — or,
 * without one, every method — would not fit.
 */
function checkMemory(config, method) {
  const browser = { deviceMemoryGiB: navigator.deviceMemory, jsHeapLimitBytes: performance.memory?.jsHeapSizeLimit };
  const limit = slimtune.pageMemoryLimit(browser);
  const reported = [browser.deviceMemoryGiB ? `device memory ${browser.deviceMemoryGiB} GiB` : "", browser.jsHeapLimitBytes ? `JS heap limit ${gib(browser.jsHeapLimitBytes)}` : ""].filter(Boolean).join(", ") || "nothing";
  const el = $("limits");
  try {
    const run = currentRun();
    const plan = slimtune.assertFitsInPage(config, run, limit, method);
    el.className = "";
    el.textContent = `Memory at batch ${run.batch} × seq ${run.seq}, limit ${gib(limit.bytes)} (${limit.source}; the browser reports ${reported}):\n${plan.map((f) => slimtune.describeFit(f, limit)).join("\n")}`;
  } catch (e) {
    el.className = "error";
    el.textContent = e?.message ?? String(e);
    throw e;
  }
}

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
  $("download-gguf").disabled = state.busy || !s;
  $("download-onnx").disabled = state.busy || !s;
}

async function loadFiles(files) {
  checkMemory(slimtune.configFromBytes(files));
  await useSession(slimtune.WebSession.open(files, {}), `files ${mib([...files.values()].reduce((n, b) => n + b.byteLength, 0))}`);
}

/** A GGUF model file's bytes: header checked and memory checked from its keys before any tensor is dequantized. */
async function loadGguf(bytes, name) {
  const gguf = slimtune.ggufFromBytes(bytes, name);
  checkMemory(slimtune.configFromGguf(gguf));
  status(`Reading ${name}: dequantizing its tensors to float32…`);
  await new Promise((done) => setTimeout(done, 0));
  await useSession(slimtune.WebSession.openGguf(gguf, {}), `GGUF ${name} ${mib(bytes.byteLength)} (${slimtune.ggufTypeSummary(gguf)})`);
}

async function useSession(session, source) {
  state.session?.release();
  state.session = session;
  state.active = undefined;
  await state.chart?.reset();
  const c = session.model.config;
  $("model-info").textContent =
    `${(session.parameterCount / 1e6).toFixed(1)} M parameters, ${c.numLayers} layers, ${source}, float32 in memory ${mib(session.parameterCount * 4)}`;
  renderAdapters();
  status(`Model loaded. Engine: onnxruntime-web ${state.runtime.executionProvider}${state.runtime.note}, ${state.runtime.threads} thread(s)${state.runtime.crossOriginIsolated ? "" : " (page not cross-origin isolated)"}.`);
}

async function pickedFiles(input) {
  await guarded("Reading the model", async () => {
    const picked = [...input.files];
    const gguf = picked.find((f) => f.name.toLowerCase().endsWith(".gguf"));
    if (gguf) {
      if (picked.length > 1) throw new Error(`pick the GGUF file alone (${picked.length} files were picked)`);
      status(`Reading ${gguf.name} (${mib(gguf.size)})…`);
      await loadGguf(new Uint8Array(await gguf.arrayBuffer()), gguf.name);
      return;
    }
    // config.json first: a model too large for the page is refused before its weights are read.
    const config = picked.find((f) => f.name === "config.json" && (f.webkitRelativePath || f.name).split("/").length <= 2);
    if (config) checkMemory(slimtune.configFromBytes(await slimtune.filesFromPicked([config])));
    await loadFiles(await slimtune.filesFromPicked(picked));
  });
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
  if (!f) return;
  $("text").value = await f.text();
  state.dataSource = f.name;
  if (f.name.toLowerCase().endsWith(".jsonl")) $("data-format").value = "jsonl";
  $("data-info").textContent = `${f.name}: ${mib(f.size)}`;
});
// Edited text is no longer the picked file: errors name "the pasted text".
$("text").addEventListener("input", () => {
  state.dataSource = null;
});

$("pick-adapter").addEventListener("change", (e) =>
  guarded("Loading the adapter", async () => {
    const s = state.session;
    if (!s) throw new Error("load a model first");
    const files = new Map();
    for (const f of e.target.files) files.set(f.name, new Uint8Array(await f.arrayBuffer()));
    const name = $("load-name").value.trim() || `loaded-${s.adapterNames.length + 1}`;
    const kind = s.loadAdapterFiles(name, files);
    state.active = name;
    renderAdapters();
    status(`Loaded ${kind === "peqa" ? "PEQA" : "LoRA"} adapter "${name}" from ${[...files.keys()].join(", ")}; it is active.`);
  }),
);

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
    checkMemory(s.model.config, method);
    const trainer = s.startTraining(method, text, opts, undefined, { format: $("data-format").value, ...(state.dataSource ? { source: state.dataSource } : {}) });
    $("data-info").textContent = `Training on ${s.trainingData.summary}`;
    const chart = state.chart;
    await chart.reset();
    // Held-out loss before training, at every quarter of the run and at its end (none when the text is too short to hold any out).
    const every = Math.max(1, Math.ceil(steps / 4));
    const heldOut = [];
    const evaluate = async (step) => {
      const e = await trainer.evaluate();
      if (e) {
        heldOut.push(e.loss);
        await chart.addHeldOut(step, e.loss);
      }
    };
    await evaluate(0);
    for (let i = 0; i < steps; i++) {
      const r = await s.trainStep();
      await chart.addStep(r.step, r.loss);
      await chart.setHeading(`${method.toUpperCase()} loss per step — ${r.tokensPerSecond.toFixed(0)} tokens/s (step ${r.step}/${steps}, batch ${opts.batch} × ${opts.seq} tokens)`);
      $("train-info").textContent = ` step ${r.step}/${steps}: loss ${r.loss.toFixed(4)}, ${r.tokensPerSecond.toFixed(0)} tokens/s`;
      status(`Training ${method}: step ${r.step}/${steps}`);
      if (r.step % every === 0 || r.step === steps) await evaluate(r.step);
      await new Promise((done) => setTimeout(done, 0));
    }
    const name = $("adapter-name").value.trim() || `${method}-${s.adapterNames.length + 1}`;
    s.keepAdapter(name);
    state.active = name;
    renderAdapters();
    const held = heldOut.length > 1 ? ` Held-out loss ${heldOut[0].toFixed(4)} → ${heldOut.at(-1).toFixed(4)}.` : "";
    status(`Trained ${steps} ${method} steps; kept as adapter "${name}".${held}`);
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

$("download-gguf").addEventListener("click", () =>
  guarded("Writing the GGUF file", async () => {
    const s = state.session;
    const name = state.active && state.active !== "(base)" ? state.active : undefined;
    const choice = $("gguf-type").value;
    // auto: a 4-bit model's layers onto the k-quant of their bits (RTN g32 asymmetric keeps its codes as Q4_1); a float one as F16.
    const method = s.adapterMethod(name);
    const quantizedBase = method === "peqa" || (method === null && s.isQuantized);
    const dtype = choice !== "auto" ? choice : quantizedBase ? "layer-bits" : "f16";
    await new Promise((done) => setTimeout(done, 0));
    const { chunks, report, description } = s.ggufFile(dtype, name);
    const file = `${name ?? "base"}-${dtype}.gguf`;
    download(file, chunks);
    const bytes = chunks.reduce((n, c) => n + c.byteLength, 0);
    const types = Object.entries(report.types).map(([t, n]) => `${t} × ${n}`).join(", ");
    $("deploy-info").textContent = `${file}: ${mib(bytes)}, ${description}; tensors ${types}${report.warnings.length ? `; ${report.warnings.join("; ")}` : ""}`;
    status(`Downloaded ${file} (${mib(bytes)}); llama.cpp loads it as it is.`);
  }),
);

$("download-onnx").addEventListener("click", () =>
  guarded("Writing the transformers.js folder", async () => {
    const s = state.session;
    const name = state.active && state.active !== "(base)" ? state.active : undefined;
    const choice = $("onnx-dtype").value;
    // auto: what the deployed model is (a 4-bit one keeps its own codes as q4, a float one fp32).
    const dtype = choice === "auto" ? undefined : choice;
    await new Promise((done) => setTimeout(done, 0));
    const { zip, files, report, description } = s.onnxZip(dtype, name);
    const file = `${name ?? "base"}-onnx.zip`;
    download(file, [zip]);
    const changed = report.changes.length ? `; ${report.changes.length} tensors changed by the dtype` : "";
    $("deploy-info").textContent = `${file}: ${mib(zip.byteLength)}, ${description}; dtype ${report.dtype}, ${files.join(", ")}${changed}`;
    status(`Downloaded ${file} (${mib(zip.byteLength)}); unzip it and load the folder with transformers.js (dtype "${report.dtype}").`);
  }),
);

window.slimtuneApp.ready = (async () => {
  try {
    const params = new URLSearchParams(location.search);
    // WebGPU only when asked for and the browser has an adapter; WASM otherwise. The training graphs
    // on ORT-web's WebGPU EP gave a wrong loss where they were tested (SwiftShader, see
    // docs/benchmarks.md §4), so ?ep=webgpu falls back to WASM with that message;
    // ?ep=webgpu-unchecked runs them on WebGPU anyway, to try another GPU.
    const asked = params.get("ep");
    let ep = asked === "webgpu" || asked === "webgpu-unchecked" ? "webgpu" : "wasm";
    let note = "";
    if (ep === "webgpu") {
      const adapter = await navigator.gpu?.requestAdapter().catch(() => null);
      const name = adapter ? [adapter.info?.vendor, adapter.info?.architecture, adapter.info?.description].filter(Boolean).join(" ") || "unnamed" : "";
      if (!adapter) {
        ep = "wasm";
        note = " (WebGPU was asked for, but this browser offers no WebGPU adapter)";
      } else if (asked === "webgpu") {
        ep = "wasm";
        note = ` (WebGPU adapter "${name}" found, but training on ORT-web's WebGPU EP gave a wrong loss in slimtune's tests — a PEQA step 7.43 where WASM and Node give 7.00; LoRA's matched — so this page trains on WASM; ?ep=webgpu-unchecked tries WebGPU anyway)`;
      } else {
        note = ` (adapter "${name}", unchecked: compare a step's loss with WASM's)`;
      }
    }
    state.runtime = slimtune.useOnnxRuntimeWeb({ wasmPaths: new URL("./", location.href).href, executionProvider: ep, ...(params.get("threads") ? { threads: Number(params.get("threads")) } : {}) });
    state.runtime.note = note;
    status(`Ready: onnxruntime-web ${state.runtime.executionProvider}${note}, ${state.runtime.threads} thread(s). Pick a model folder.`);
    const model = params.get("model");
    state.chart = await createLossChart($("chart"));
    if (model) {
      await guarded("Fetching the model", async () => {
        if (model.toLowerCase().endsWith(".gguf")) {
          const res = await fetch(model);
          if (!res.ok) throw new Error(`fetching ${model} gave HTTP ${res.status}`);
          await loadGguf(new Uint8Array(await res.arrayBuffer()), model.split("/").pop());
          return;
        }
        const base = model.endsWith("/") ? model : `${model}/`;
        // config.json first: a model too large for the page is refused before its weights are fetched.
        const config = await slimtune.fetchModelFiles(base, ["config.json"]);
        checkMemory(slimtune.configFromBytes(config));
        await loadFiles(new Map([...config, ...(await slimtune.fetchModelFiles(base, ["model.safetensors", "tokenizer.json", "tokenizer_config.json", "generation_config.json", "special_tokens_map.json"]))]));
      });
    }
  } catch (e) {
    status(`Start-up failed: ${e?.message ?? e}`, true);
  }
  setButtons();
})();
