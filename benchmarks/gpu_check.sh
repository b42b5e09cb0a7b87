#!/usr/bin/env bash
# The one short GPU check of the server-gpu path, run on a device machine (see
# benchmarks/gpu_check_prepare.py, which prepares .device-carry/ here first):
#   run(command="bash benchmarks/gpu_check.sh", carry=[".device-carry"], timeout_s=540)
# 1. edgebert compress --target server-gpu on the embedded MiniLM and the builtin intents data:
#    finetune, prune, distill, export-onnx, build-tensorrt (engine where TensorRT is installed, else
#    build_engine.sh), export-pytorch fp16 with compile: auto, which times eager vs torch.compile on
#    this GPU and records the decision in model/torch_compile.json.
# 2. edgebert bench --device cuda: the fine-tuned fp32 model (eager fp32 and fp16) next to the
#    artifact (its fp16 checkpoint, compiled where step 1 enabled it; its ONNX through onnxruntime).
# Everything it writes that should be committed lands in $OUT (or runs/gpu-check without $OUT).
# A dry run here on the CPU (where edgebert is installed): LOCAL=1 DEVICE=cpu bash benchmarks/gpu_check.sh
set -euo pipefail
OUT=${OUT:-runs/gpu-check}
DEVICE=${DEVICE:-cuda}
CARRY=.device-carry
mkdir -p "$OUT"
if [ -z "${LOCAL:-}" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $CARRY/whl/*.whl
  export PYTHONPATH="$PWD:/tmp/site"
fi
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1
python3 - <<'PY'
import shutil
from pathlib import Path
from safetensors.torch import load_file, save_file
src, dst = Path(".device-carry/minilm-fp16"), Path("/tmp/minilm")
shutil.copytree(src, dst, dirs_exist_ok=True)
w = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(src / "model.safetensors")).items()}
save_file(w, str(dst / "model.safetensors"), metadata={"format": "pt"})
PY
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv || echo "nvidia-smi: not here"
  python3 -c "import torch, transformers, onnxruntime; print('torch', torch.__version__, 'cuda', torch.version.cuda, '| transformers', transformers.__version__, '| onnxruntime', onnxruntime.__version__, onnxruntime.get_available_providers())"
  python3 -c "import tensorrt; print('tensorrt', tensorrt.__version__)" || echo "tensorrt: not installed"
} 2>&1 | tee "$OUT/environment.txt"
ART=/tmp/gpu-check/art
python3 -m edgebert compress --model /tmp/minilm --target server-gpu --data intents --out "$ART" --overwrite 2>&1 | tee "$OUT/compress.log"
cp "$ART/manifest.json" "$OUT/manifest.json"
cp "$ART/model/torch_compile.json" "$OUT/torch_compile.json" || true
# bench writes bench.json at its end: cap it so that the call returns within its limit either way.
timeout 330 python3 -m edgebert bench "$ART/stages/01-finetune/model" "$ART" --data intents --split test \
  --device "$DEVICE" --rounds 3 --latency-samples 80 --out "$OUT/bench" --overwrite --quiet 2>&1 | tee "$OUT/bench.log"
rm -f "$OUT/bench/pareto.png" "$OUT/bench/bench.csv"  # 8 files come back at most
