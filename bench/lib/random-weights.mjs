// Seeded stand-in weights for the config-only shapes in shared/models: N(0, 0.02²) for every
// matrix and 1 for every norm, as ../shared/bench/torch_peer.py's --random draws them. One
// function, so every benchmark that compares at these shapes uses the same weights for a seed.

/**
 * `{ name, shape, data }` for every parameter of `config`, drawn in llamaParamShapes' order.
 * `Rng` and `llamaParamShapes` come from the caller's import of dist/ (bench scripts load it lazily).
 */
export function randomLlamaWeights(config, seed, { Rng, llamaParamShapes }) {
  const rng = new Rng(seed);
  const out = [];
  for (const [name, shape] of llamaParamShapes(config)) {
    const data = new Float32Array(shape.reduce((p, d) => p * d, 1));
    if (name.endsWith("norm.weight")) data.fill(1);
    else rng.fillNormal(data, 0.02);
    out.push({ name, shape, data });
  }
  return out;
}
