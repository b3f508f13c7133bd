#!/usr/bin/python3
"""PyTorch GPTQ peer for bench/quantize.mjs: the per-layer algorithm of the GPTQ authors' reference
(`GPTQ.fasterquant`, Frantar et al. 2022), written from the paper's Algorithm 1 and its "lazy batch"
and "Cholesky reformulation" sections, timed on the same weights and Hessians slimtune gets.

Per layer (one weight W [n, k] and the Hessian H [k, k] of its input, both raw little-endian float32):
  dead columns (H_jj = 0) get H_jj = 1 and zero weights; act-order permutes columns by decreasing
  H_jj; λ = damp · mean(diag H) is added to the diagonal; U = chol(H⁻¹, upper) via
  cholesky → cholesky_inverse → cholesky(upper); columns are quantized in blocks of `block_size`,
  each column's error e = (w − q) / U_ii moving the rest of its block at once, and the block's errors
  reaching the later columns as one product Err · U[block, rest]. Group parameters (asymmetric
  min/max, GPTQ's rule) are fixed from the current values when a group starts.

Everything runs in float32 as the reference does. Layers that share an input share the Hessian
preparation (as in a model: q/k/v, gate/up), so the manifest lists preparations and their layers.
Timed (wall and process CPU seconds, the machine being shared): the preparation and each layer's column loop. Not timed: reading files, and the relative
reconstruction error ‖(W − Q)X‖ / ‖WX‖ = sqrt(tr(D H Dᵀ) / tr(W H Wᵀ)) reported for comparison.

Usage: gptq_peer.py --dir DIR [--threads 1] [--out-values DIR]
DIR/manifest.json: {"bits", "act_order", "damp", "block_size",
                    "hessians": [{"name", "k", "group_size", "file", "layers": [{"name", "n", "file"}]}]}
Prints one JSON line per layer and a final summary line.
"""

import argparse
import json
import os
import resource
import sys
import time

# torch.set_num_threads does not reach OpenBLAS, which torch's LAPACK calls (cholesky) and numpy use:
# unpinned, a "--threads 1" peer ran on ~1.9 cores of 2 (session 29). Its thread count is read from
# the environment when the library loads, so it is set from --threads before the imports.
_threads = sys.argv[sys.argv.index("--threads") + 1] if "--threads" in sys.argv[:-1] else "1"
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, _threads)

import numpy as np
import torch


def find_params(x, bits):
    """Scale and zero per row of x [n, g], asymmetric min/max with 0 inside the range (GPTQ's Quantizer)."""
    maxq = 2**bits - 1
    zero = torch.zeros(x.shape[0])
    xmin = torch.minimum(x.min(1).values, zero)
    xmax = torch.maximum(x.max(1).values, zero)
    both_zero = (xmin == 0) & (xmax == 0)
    xmin[both_zero] = -1
    xmax[both_zero] = 1
    scale = (xmax - xmin) / maxq
    zero = torch.round(-xmin / scale)
    return scale, zero


def quantize(w, scale, zero, maxq):
    q = torch.clamp(torch.round(w / scale) + zero, 0, maxq)
    return scale * (q - zero)


def prepare(h, damp, act_order):
    """Dead columns, permutation, dampening and the upper Cholesky factor of H⁻¹."""
    k = h.shape[0]
    h = h.clone()
    dead = torch.diag(h) == 0
    h[dead, dead] = 1
    perm = None
    if act_order:
        perm = torch.argsort(torch.diag(h), descending=True)
        h = h[perm][:, perm]
    h[torch.arange(k), torch.arange(k)] += damp * torch.mean(torch.diag(h))
    l = torch.linalg.cholesky(h)
    hinv = torch.cholesky_inverse(l)
    u = torch.linalg.cholesky(hinv, upper=True)
    return dead, perm, u


def gptq_layer(w, dead, perm, hinv, bits, group_size, block_size):
    """Quantized-and-dequantized W (original column order) and GPTQ's loss estimate."""
    n, k = w.shape
    maxq = 2**bits - 1
    w = w.clone()
    w[:, dead] = 0
    if perm is not None:
        w = w[:, perm]
    q_all = torch.zeros_like(w)
    losses = torch.zeros(n)
    scale, zero = (None, None) if group_size < k else find_params(w, bits)
    for i1 in range(0, k, block_size):
        i2 = min(i1 + block_size, k)
        count = i2 - i1
        w1 = w[:, i1:i2].clone()
        q1 = torch.zeros_like(w1)
        err1 = torch.zeros_like(w1)
        hinv1 = hinv[i1:i2, i1:i2]
        for i in range(count):
            col = w1[:, i]
            d = hinv1[i, i]
            if group_size < k and (i1 + i) % group_size == 0:
                # As the reference does: from W, which holds the earlier blocks' errors but not this block's
                # (the same values when the group starts the block; slimtune reads the block's current
                # values, so a group starting mid-block, e.g. g64 in blocks of 128, can differ slightly).
                scale, zero = find_params(w[:, i1 + i:i1 + i + group_size], bits)
            q = quantize(col, scale, zero, maxq)
            q1[:, i] = q
            losses += (col - q) ** 2 / d**2 / 2
            e = (col - q) / d
            w1[:, i:] -= e.unsqueeze(1).matmul(hinv1[i, i:].unsqueeze(0))
            err1[:, i] = e
        q_all[:, i1:i2] = q1
        w[:, i2:] -= err1.matmul(hinv[i1:i2, i2:])
    if perm is not None:
        q_all = q_all[:, torch.argsort(perm)]
    return q_all, float(losses.sum())


def relative_error(w, q, h):
    """‖(W − Q)X‖ / ‖WX‖ through H ∝ XᵀX, in float64."""
    w64 = w.double()
    d = w64 - q.double()
    h64 = h.double()
    num = torch.einsum("ij,jk,ik->", d, h64, d)
    den = torch.einsum("ij,jk,ik->", w64, h64, w64)
    return float(torch.sqrt(num / den))


def read_raw(path, shape):
    return torch.from_numpy(np.fromfile(path, dtype="<f4").reshape(shape).copy())


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dir", required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out-values", default="", help="write each layer's dequantized Q here (float32 raw)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    with open(os.path.join(args.dir, "manifest.json")) as f:
        m = json.load(f)
    # Warm-up, untimed (slimtune's side does the same): torch's first calls allocate and dispatch.
    warm_k = 384
    idx = torch.arange(warm_k)
    warm_h = 1 / (1 + (idx[:, None] - idx[None, :]).abs().float())
    warm_h[idx, idx] = 2
    warm_w = torch.sin(torch.arange(64 * warm_k, dtype=torch.float32)).reshape(64, warm_k)
    dead, perm, hinv = prepare(warm_h, m["damp"], m["act_order"])
    gptq_layer(warm_w, dead, perm, hinv, m["bits"], 128, m["block_size"])
    total_prep = 0.0
    total_layers = 0.0
    total_cpu = 0.0
    for hs in m["hessians"]:
        k = hs["k"]
        h = read_raw(os.path.join(args.dir, hs["file"]), (k, k))
        t0, c0 = time.perf_counter(), time.process_time()
        dead, perm, hinv = prepare(h, m["damp"], m["act_order"])
        prep_s, prep_cpu = time.perf_counter() - t0, time.process_time() - c0
        total_prep += prep_s
        total_cpu += prep_cpu
        for layer in hs["layers"]:
            w = read_raw(os.path.join(args.dir, layer["file"]), (layer["n"], k))
            t0, c0 = time.perf_counter(), time.process_time()
            q, loss = gptq_layer(w, dead, perm, hinv, m["bits"], hs["group_size"], m["block_size"])
            sec, cpu = time.perf_counter() - t0, time.process_time() - c0
            total_layers += sec
            total_cpu += cpu
            if args.out_values:
                q.numpy().astype("<f4").tofile(os.path.join(args.out_values, layer["name"] + ".q.f32"))
            rec = {"layer": layer["name"], "n": layer["n"], "k": k, "hessian": hs["name"], "hessian_s": prep_s, "gptq_s": sec, "hessian_cpu_s": prep_cpu, "gptq_cpu_s": cpu, "loss": loss, "relative_error": relative_error(w, q, h)}
            print(json.dumps(rec), flush=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"summary": True, "torch": torch.__version__, "threads": torch.get_num_threads(), "hessian_s": total_prep, "gptq_s": total_layers, "seconds": total_prep + total_layers, "cpu_s": total_cpu, "peak_rss_mb": peak}), flush=True)


if __name__ == "__main__":
    sys.exit(main())
