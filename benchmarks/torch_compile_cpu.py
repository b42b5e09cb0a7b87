"""torch.compile on this CPU for the fine-tuned MiniLM (fp32, batch 1, real SST-2 dev sentences at their
own lengths): what the export-pytorch stage measures and decides, on a real model.

    python benchmarks/torch_compile_cpu.py

Runs `edgebert compress --model runs/models/minilm-sst2 --target cpu --data ../shared/data/sst2` with a
one-stage recipe (export-pytorch, float32, compile: on, compile_min_speedup 1.1, 32 sentences; `on`
because `auto` measures on GPUs only), into runs/torch-compile-cpu, and copies the stage's decision
(model/torch_compile.json: eager and compiled medians, speed-up, compile seconds, logit difference,
label agreement) to runs/benchmarks/torch_compile_cpu.json (--publish: benchmarks/results/) with the
command and date.
On a GPU the server-gpu recipe makes the same measurement itself (compile: auto).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from publish import add_publish_option, results_dir  # run as a script: benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
RECIPE = {"name": "pytorch-compile-check", "stages": [
    {"kind": "export-pytorch", "dtype": "float32", "compile": "on", "compile_min_speedup": 1.1, "compile_samples": 32}]}


def main() -> None:
    import argparse

    import yaml

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_publish_option(ap)
    args = ap.parse_args()

    from edgebert.artifact import now_iso, write_json

    model, data, out = ROOT / "runs/models/minilm-sst2", ROOT.parent / "shared/data/sst2", ROOT / "runs/torch-compile-cpu"
    if not model.is_dir():
        sys.exit(f"missing {model}: run python benchmarks/finetune_minilm.py --keep runs/models first")
    with tempfile.TemporaryDirectory() as tmp:
        recipe = Path(tmp) / "pytorch-compile-check.yaml"
        recipe.write_text(yaml.safe_dump(RECIPE), encoding="utf-8")
        cmd = [sys.executable, "-m", "edgebert", "compress", "--model", str(model), "--target", "cpu", "--data",
               str(data), "--recipe", str(recipe), "--out", str(out), "--overwrite", "--quiet"]
        subprocess.run(cmd, cwd=ROOT, check=True)
    decision = json.loads((out / "model" / "torch_compile.json").read_text())
    record = {"command": "python benchmarks/torch_compile_cpu.py", "date": now_iso(), "model": "runs/models/minilm-sst2",
              "recipe": RECIPE, "decision": decision}
    write_json(results_dir(args.publish) / "torch_compile_cpu.json", record)
    print(json.dumps(decision, indent=2))


if __name__ == "__main__":
    main()
