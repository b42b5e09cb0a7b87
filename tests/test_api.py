"""The public library API (``import edgebert``) and ``python -m edgebert``."""

from __future__ import annotations

import subprocess
import sys

import edgebert


def test_import_is_light_and_exposes_api():
    code = ("import sys, edgebert; print(all(callable(getattr(edgebert, n)) for n in "
            "('finetune', 'evaluate', 'load_model', 'load_dataset')), 'torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["True", "False"]


def test_library_roundtrip(tiny_bert_dir, tiny_sentiment_dir, tmp_path):
    ds = edgebert.load_dataset(str(tiny_sentiment_dir))
    assert ds.label_names == ["negative", "positive"]
    cfg = edgebert.FinetuneConfig(epochs=2, batch_size=8, learning_rate=1e-3)
    res = edgebert.finetune(str(tiny_bert_dir), ds, out=str(tmp_path / "m"), config=cfg, progress=False)
    m = edgebert.evaluate(str(res.out), ds, split="dev")
    assert m["n"] == len(ds.split("dev"))
    assert set(m["per_class"]) == {"negative", "positive"}
    assert sum(map(sum, m["confusion_matrix"]["matrix"])) == m["n"]
    loaded = edgebert.load_model(str(res.out))
    assert loaded.label_names == ["negative", "positive"]


def test_python_dash_m():
    out = subprocess.run([sys.executable, "-m", "edgebert", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "finetune" in out.stdout and "Usage: edgebert" in out.stdout
