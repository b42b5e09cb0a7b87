"""Prepare the one short GPU check of the server-gpu path (benchmarks/gpu_check.sh) for a session
that is lent a GPU machine through the device tool. Run here, once, before the device call:

    python benchmarks/gpu_check_prepare.py        # writes .device-carry/ (git-ignored through .git/info/exclude)

The device machine has torch, transformers, onnx and onnxruntime but no pydantic and no embedded
MiniLM, and nothing can be downloaded there; what travels is capped at 64 MiB. So .device-carry/
gets: the pydantic wheels for its Python 3.12 (pip download, here), and the embedded MiniLM
(all-MiniLM-L6-v2) with its weights stored in float16 (45 MB instead of 91 MB; gpu_check.sh
restores float32 there before anything trains on it). Then, with the device tool:

    run(command="bash benchmarks/gpu_check.sh", carry=[".device-carry"], timeout_s=540)

and commit what comes back under $OUT (bench.json / bench.md / manifest.json) to
benchmarks/results/gpu-check/.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CARRY = ROOT / ".device-carry"
# pydantic and what it needs; typing-extensions too, since pydantic-core wants a recent one.
WHEELS = ("pydantic", "pydantic-core", "annotated-types", "typing-inspection", "typing-extensions")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64",
             "manylinux1_x86_64")


def main() -> None:
    from importlib.metadata import version

    from safetensors.torch import load_file, save_file

    from edgebert import models

    exclude = ROOT / ".git" / "info" / "exclude"
    if exclude.parent.parent.is_dir() and (not exclude.is_file() or "/.device-carry/" not in exclude.read_text()):
        exclude.parent.mkdir(exist_ok=True)  # a fresh clone may have no .git/info
        with exclude.open("a") as f:
            f.write("/.device-carry/\n")
    shutil.rmtree(CARRY, ignore_errors=True)
    (CARRY / "whl").mkdir(parents=True)
    pins = [f"{name}=={version(name)}" for name in WHEELS]
    cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.12",
           "--implementation", "cp", *[a for p in PLATFORMS for a in ("--platform", p)], "-d", str(CARRY / "whl"), *pins]
    for pin in pins:  # one at a time: pure-Python wheels match any platform, pydantic-core needs one listed
        subprocess.run([*cmd[:-len(pins)], pin], check=True)
    src = Path(models.resolve("minilm").path)
    dst = CARRY / "minilm-fp16"
    dst.mkdir()
    for f in src.iterdir():
        if f.is_file() and f.suffix != ".safetensors":
            shutil.copy2(f, dst / f.name)
    weights = {k: v.half() if v.is_floating_point() else v for k, v in load_file(str(src / "model.safetensors")).items()}
    save_file(weights, str(dst / "model.safetensors"), metadata={"format": "pt"})
    total = sum(p.stat().st_size for p in CARRY.rglob("*") if p.is_file())
    print(f"{CARRY}: {total / 2**20:.1f} MiB (limit 64 MiB with the working tree)")


if __name__ == "__main__":
    main()
