// The PyTorch peer's parameter names (torch_peer modules: emb, head, norm, blocks.i.{q,k,v,o,g,u,d,n1,n2})
// mapped to transformers' names, as the shared reference.json files use them.

const MODULES: Record<string, string> = {
  q: "self_attn.q_proj",
  k: "self_attn.k_proj",
  v: "self_attn.v_proj",
  o: "self_attn.o_proj",
  g: "mlp.gate_proj",
  u: "mlp.up_proj",
  d: "mlp.down_proj",
  n1: "input_layernorm",
  n2: "post_attention_layernorm",
};

export function transformersName(peerName: string): string {
  if (peerName === "emb") return "model.embed_tokens.weight";
  if (peerName === "head") return "lm_head.weight";
  if (peerName === "norm.weight") return "model.norm.weight";
  const m = /^blocks\.(\d+)\.(\w+)\.(weight|bias)$/.exec(peerName);
  if (!m || !MODULES[m[2]!]) throw new Error(`unknown peer parameter name "${peerName}"`);
  return `model.layers.${m[1]}.${MODULES[m[2]!]}.${m[3]}`;
}
