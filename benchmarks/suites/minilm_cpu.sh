#!/usr/bin/env bash
# Suite: the embedded MiniLM fine-tuned (by benchmarks/finetune_minilm.py --keep runs/models) on
# SST-2 and BANKING77, benchmarked on this machine's CPU with the three baselines
# (PyTorch eager fp32, onnxruntime fp32, Optimum ONNX export + dynamic int8).
#
#   python benchmarks/finetune_minilm.py --keep runs/models    # once: the two fine-tuned models
#   bash benchmarks/suites/minilm_cpu.sh [--publish]            # this suite
#
# Outputs: runs/bench/<dataset>/ (everything, including the baseline model files) and the reports
# (bench.json, bench.csv, bench.md, pareto.png) copied to runs/benchmarks/minilm-cpu-<dataset>/, or with
# --publish to benchmarks/results/minilm-cpu-<dataset>/ (the committed records; see benchmarks/publish.py).
set -euo pipefail
cd "$(dirname "$0")/../.."
results=runs/benchmarks
[ "${1:-}" = --publish ] && results=benchmarks/results
DATA=../shared/data
for ds in sst2 banking77; do
  model=runs/models/minilm-$ds
  [ -d "$model" ] || { echo "missing $model: run python benchmarks/finetune_minilm.py --keep runs/models" >&2; exit 1; }
  split=test
  [ "$ds" = sst2 ] && split=dev
  edgebert bench "$model" --data "$DATA/$ds" --split "$split" --baselines --seq-len 128 --rounds 3 --latency-samples 150 \
    --out "runs/bench/$ds" --overwrite --quiet
  dest=$results/minilm-cpu-$ds
  mkdir -p "$dest"
  cp runs/bench/$ds/bench.json runs/bench/$ds/bench.csv runs/bench/$ds/bench.md runs/bench/$ds/pareto.png "$dest/"
done
