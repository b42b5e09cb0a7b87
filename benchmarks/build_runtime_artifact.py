"""Lay out a runtime artifact folder from a fine-tuned model folder, with the library's exporters.

Until ``edgebert compress`` writes artifacts, this is how the runtime benchmarks (and
``tests/test_runtime.py``) get one::

    python benchmarks/build_runtime_artifact.py runs/models/minilm-banking77 runs/artifacts/minilm-banking77-int8 --int8

Output (the artifact folder contract the runtime reads)::

    OUT/manifest.json   {"schema_version": 1, "kind": "edgebert-artifact", "deploy": {...}, "stages": [...]}
    OUT/model/          model.onnx (fp32 or int8 dynamic), or model.ort, or model.pt
    OUT/tokenizer/      the model's tokenizer (tokenizer.json included)
    OUT/labels.json     {"labels": [...]}

Steps: ``edgebert.export.export_onnx`` (validated against PyTorch on a few sentences), optionally
``edgebert.compress.quantize.quantize_onnx`` (int8 dynamic), optionally
``edgebert.export.export_mobile`` (.ort) or ``edgebert.export.export_torchscript`` (.pt).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

FORMATS = ("onnx", "ort", "torchscript")
_CHECK_TEXTS = ["I lost my card yesterday", "this film was a delight", "how do I change my PIN?"]


def build_artifact(model_dir: str | Path, out: str | Path, *, fmt: str = "onnx", int8: bool = False,
                   max_length: int = 128, threshold: float | None = None, deploy: bool = True) -> Path:
    """Write an artifact folder for ``model_dir`` at ``out`` (replaced when present); return ``out``.

    ``fmt``: onnx | ort | torchscript; ``int8``: dynamic int8 quantization of the ONNX graph (onnx
    and ort); ``deploy=False`` writes a manifest without a ``deploy`` block (an older folder).
    """
    from edgebert.artifact import now_iso, write_json
    from edgebert.manifest import ARTIFACT_KIND, SCHEMA_VERSION
    from edgebert.export import export_onnx, validate_onnx
    from edgebert.models import load, max_tokens

    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, got {fmt!r}")
    out = Path(out)
    loaded = load(str(model_dir))
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    stage.chmod(0o755)  # mkdtemp makes it private; an artifact is meant to be shipped
    model_path = stage / "model" / "model.onnx"
    stages: list[dict] = []
    if fmt == "torchscript":
        from edgebert.export import export_torchscript

        model_path = export_torchscript(loaded.model, loaded.tokenizer, stage / "model" / "model.pt")
        stages.append({"kind": "export_torchscript"})
    else:
        export_onnx(loaded.model, loaded.tokenizer, model_path)
        check = validate_onnx(loaded.model, loaded.tokenizer, model_path, _CHECK_TEXTS)
        stages.append({"kind": "export_onnx", "validation": check})
        if int8:
            from edgebert.compress.quantize import quantize_onnx

            fp32 = model_path.with_name("model-fp32.onnx")
            model_path.rename(fp32)
            quantize_onnx(fp32, model_path, mode="int8-dynamic")
            fp32.unlink()
            stages.append({"kind": "quantize", "mode": "int8-dynamic"})
        if fmt == "ort":
            from edgebert.export import export_mobile

            report = export_mobile(model_path, stage / "model", check_usability=False)
            model_path.unlink()
            model_path = Path(report["ort_path"])
            stages.append({"kind": "export_mobile"})
    loaded.tokenizer.save_pretrained(stage / "tokenizer")
    write_json(stage / "labels.json", {"labels": list(loaded.label_names)})
    manifest = {"schema_version": SCHEMA_VERSION, "kind": ARTIFACT_KIND, "target": "cpu", "created": now_iso(),
                "source": str(model_dir), "stages": stages}
    if deploy:
        manifest["deploy"] = {
            "format": {"onnx": "onnx", "ort": "ort", "torchscript": "torchscript"}[fmt],
            "model": str(model_path.relative_to(stage)), "max_length": max_length,
            "model_max_length": max_tokens(loaded.model.config),
            "input_names": list(loaded.spec.input_names), "threshold": threshold, "unknown_label": "unknown",
        }
    write_json(stage / "manifest.json", manifest)
    if out.exists():
        shutil.rmtree(out)
    stage.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dir", help="a fine-tuned Hugging Face classifier folder (edgebert finetune output)")
    ap.add_argument("out", help="artifact folder to write (replaced when present)")
    ap.add_argument("--format", dest="fmt", choices=FORMATS, default="onnx")
    ap.add_argument("--int8", action="store_true", help="int8 dynamic quantization of the ONNX graph")
    ap.add_argument("--max-length", type=int, default=128, help="deploy.max_length (tokens)")
    args = ap.parse_args(argv)
    path = build_artifact(args.model_dir, args.out, fmt=args.fmt, int8=args.int8, max_length=args.max_length)
    print(f"artifact written to {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
