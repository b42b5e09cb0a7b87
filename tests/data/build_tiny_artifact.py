"""Rebuild the committed runtime artifact ``tests/data/tiny-artifact`` (about 150 KB).

    python tests/data/build_tiny_artifact.py            # needs the training side: pip install -e '.[dev]'

The same tiny model as the test fixtures (``tests/conftest.py``: a 2-layer, 32-wide BERT over a ~150-token
WordPiece vocabulary, fine-tuned on the tiny positive / negative task), laid out as a runtime artifact by
``benchmarks/build_runtime_artifact.py`` (fp32 ONNX, deploy block, max 128 tokens). It is committed so
that a runtime-only install, with no torch to build one, has an artifact to run:
``tests/runtime_install_check.sh`` runs ``edgebert predict`` and ``edgebert serve`` on it, and
``tests/test_runtime.py`` checks that the current runtime still loads it. Rebuild it when the artifact
layout changes.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent
OUT = HERE / "tiny-artifact"


def _conftest():
    spec = importlib.util.spec_from_file_location("edgebert_tests_conftest", TESTS / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(out: Path = OUT) -> Path:
    import torch
    from transformers import AutoTokenizer, BertModel

    from edgebert.artifact import write_json
    from edgebert.train import finetune

    conf = _conftest()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        vocab = conf._vocab()
        tok_dir = tmp / "tokenizer"
        conf.build_wordpiece_tokenizer(vocab).save_pretrained(tok_dir)
        torch.manual_seed(0)
        encoder = tmp / "tiny-bert"
        BertModel(conf.tiny_bert_config(len(vocab))).save_pretrained(encoder)
        AutoTokenizer.from_pretrained(tok_dir).save_pretrained(encoder)
        data = tmp / "tiny-sentiment"
        data.mkdir()
        rows = [(t, "positive") for t in conf.POSITIVE] + [(t, "negative") for t in conf.NEGATIVE]
        for name in ("train", "dev"):
            with open(data / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows([("text", "label"), *rows * (4 if name == "train" else 1)])
        res = finetune(str(encoder), str(data), out=tmp / "classifier", config=conf._tiny_training(), progress=False)
        if res.metrics["dev"]["accuracy"] < 0.9:
            raise SystemExit(f"the tiny classifier did not learn its task: {res.metrics['dev']}")
        conf.build_runtime_artifact(tmp / "classifier", out)
    # the temporary folder it was built from says nothing to a reader: name the script instead
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    manifest["source"] = "tests/data/build_tiny_artifact.py"
    write_json(out / "manifest.json", manifest)
    return out


if __name__ == "__main__":
    sys.path.insert(0, str(TESTS.parent))  # this checkout's edgebert
    path = build()
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    print(f"artifact written to {path} ({size / 1e3:.0f} KB)")
