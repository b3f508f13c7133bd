#!/bin/sh
# docs/results/instruct.md: instruction tuning of ref-llama-5m on T0-mix (prompt/completion, loss on
# the answers, packed) with full, LoRA, QLoRA-4, PEQA-4 and LoRA on a 30 % pruned model, the same
# token budget each (STEPS × 8 rows × 256 positions, the same seeded order); exact match on
# t0-mix-dev before and after. Then AG News as generation against the classification head.
# One ONNX Runtime thread per run (the machine is shared). Results: bench/results/instruct/*.json.
# Usage: sh bench/instruct-experiment.sh [STEPS]   (then node bench/instruct-summary.mjs)
set -eu
cd "$(dirname "$0")/.."
ST="node dist/cli/main.js"
M=../shared/models/ref-llama-5m
D=../shared/data/instructions
R=bench/results/instruct
W=${TMPDIR:-/tmp}/slimtune-instruct
STEPS=${1:-200}
mkdir -p "$R" "$W"
common="--data $D/t0-mix-train.jsonl --eval-data $D/t0-mix-dev.jsonl --eval-examples 400 --steps $STEPS --batch 8 --seq 256 --warmup 10 --eval-every 0 --checkpoint-every 0 --threads 1 --json"
em() { # model, adapter-or-empty, output name
  if [ -n "$2" ]; then a="--adapter $2"; else a=""; fi
  $ST eval --task generate --model "$1" $a --data $D/t0-mix-dev.jsonl --threads 1 --json > "$R/$3.json"
}

# Packing against one example per row: tokens/s of the same LoRA step budget.
$ST finetune --method lora --model $M $common --steps 20 --eval-examples 1 --out "$W/pack" > "$R/speed-packed.json"
$ST finetune --method lora --model $M $common --steps 20 --eval-examples 1 --no-pack --out "$W/nopack" > "$R/speed-unpacked.json"

[ -d "$W/q4" ] || $ST quantize --model $M --bits 4 --out "$W/q4"
[ -d "$W/p30" ] || $ST prune --model $M --data ../shared/data/wikitext-2/valid.txt --ratio 0.3 --out "$W/p30"

em $M "" em-float-before
em "$W/q4" "" em-q4-before
em "$W/p30" "" em-p30-before

$ST finetune --method full  --model $M        $common --lr 5e-4 --out "$W/full"  > "$R/train-full.json";  em "$W/full" "" em-full
$ST finetune --method lora  --model $M        $common --lr 2e-3 --out "$W/lora"  > "$R/train-lora.json";  em $M "$W/lora" em-lora
$ST finetune --method qlora --model "$W/q4"   $common --lr 2e-3 --out "$W/qlora" > "$R/train-qlora.json"; em "$W/q4" "$W/qlora" em-qlora
$ST finetune --method peqa  --model "$W/q4"   $common --lr 2e-3 --out "$W/peqa"  > "$R/train-peqa.json";  em "$W/q4" "$W/peqa" em-peqa
$ST finetune --method lora  --model "$W/p30"  $common --lr 2e-3 --out "$W/p30-lora" > "$R/train-p30-lora.json"; em "$W/p30" "$W/p30-lora" em-p30-lora

# AG News: generation (prompt "…\nTopic:" → class name) against a classification head, same split and steps.
A=../shared/data/ag-news
node bench/ag-news-jsonl.mjs $A/train.tsv $A/classes.txt "$W/ag-train.jsonl"
node bench/ag-news-jsonl.mjs $A/dev.tsv $A/classes.txt "$W/ag-dev.jsonl"
ag="--steps $STEPS --batch 8 --warmup 10 --eval-every 0 --checkpoint-every 0 --threads 1 --json --lr 2e-3"
$ST eval --task generate --model $M --data "$W/ag-dev.jsonl" --threads 1 --json > "$R/em-ag-before.json"
$ST finetune --method lora --model $M --data "$W/ag-train.jsonl" --eval-data "$W/ag-dev.jsonl" --seq 128 $ag --out "$W/ag-gen" > "$R/train-ag-gen.json"
$ST eval --task generate --model $M --adapter "$W/ag-gen" --data "$W/ag-dev.jsonl" --threads 1 --json > "$R/em-ag-gen.json"
$ST finetune --task classify --method lora --model $M --data $A/train.tsv --eval-data $A/dev.tsv --max-len 128 $ag --out "$W/ag-cls" > "$R/train-ag-cls.json"
