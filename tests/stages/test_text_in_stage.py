"""The text-in stage: its place in a recipe, and a mobile-style run (int8, text-in, .ort) whose shipped file
takes strings and answers as the token-in model did."""

import pytest

from edgebert.errors import ConfigError
from edgebert.stages.registry import check_order, parse_stage


def _order(*kinds):
    return check_order([parse_stage(k if isinstance(k, dict) else {"kind": k}, "r.yaml") for k in kinds], "r.yaml")


def test_order_rules():
    with pytest.raises(ConfigError, match="stage 1 'text-in' needs an ONNX model"):
        _order("text-in", "export-onnx")
    with pytest.raises(ConfigError, match="quantize the classifier first"):
        _order({"kind": "export-onnx", "fuse": False}, "text-in", "quantize")
    with pytest.raises(ConfigError, match="TensorRT cannot parse the onnxruntime-extensions"):
        _order({"kind": "export-onnx", "fuse": False}, "text-in", {"kind": "build-tensorrt", "precision": "fp16"})
    with pytest.raises(ConfigError, match="already takes text"):
        _order({"kind": "export-onnx", "fuse": False}, "text-in", "text-in")
    _order({"kind": "export-onnx", "fuse": False}, "quantize", "text-in", "export-mobile")


RECIPE = [{"kind": "export-onnx", "fuse": False}, {"kind": "quantize", "max_accuracy_drop": 100.0},
          {"kind": "text-in"}, {"kind": "export-mobile"}]


def test_int8_text_in_ort_through_the_pipeline(request, tmp_path):
    import json

    pytest.importorskip("onnxruntime_extensions", reason="text-in needs onnxruntime-extensions (edgebert[textin])")
    from conftest import run_stage
    from edgebert.runtime import Classifier

    rec, files, out = run_stage(request, tmp_path, "text-in", RECIPE)
    manifest = json.loads((out / "manifest.json").read_text())
    by_kind = {s["kind"]: s for s in manifest["stages"]}
    v = rec["validation"]
    assert v["token_mismatches"] == 0 and v["label_mismatches"] == 0 and v["texts"] > 0
    assert rec["metrics"]["tokenizer"] and by_kind["export-mobile"]["validation"]["label_agreement"] == 1.0
    # the usability checker cannot load the extensions' operators: the run says so instead of failing
    assert by_kind["export-mobile"]["metrics"]["usability"]["skipped"].startswith("not checked")
    assert manifest["deploy"]["model"].endswith(".ort") and "model.ort" in files
    assert {"EdgebertClassifier.kt", "EdgebertClassifier.swift"} <= set(files)  # they feed a text-in model its string
    clf = Classifier.load(out)
    assert clf.text_in
    labels = [p.label for p in clf.predict(["a great film", "a dull and boring film"])]
    assert set(labels) <= {"positive", "negative"}


def test_a_sentence_pair_task_is_refused_before_any_stage_runs(tiny_bert_dir, tiny_pair_dir, tmp_path):
    """The in-graph tokenizer takes single texts: a pair task fails at plan time, not after fine-tuning."""
    from edgebert.errors import ConfigError
    from edgebert.pipeline import compress

    with pytest.raises(ConfigError, match="stage 4 \\(text-in\\): Text-in models take single texts"):
        compress(str(tiny_bert_dir), "mobile", data=str(tiny_pair_dir), out=tmp_path / "art",
                 recipe=_recipe(tmp_path), progress=False)
    assert not (tmp_path / "art").exists()


def _recipe(tmp_path):
    import yaml

    path = tmp_path / "pair-text-in.yaml"
    path.write_text(yaml.safe_dump({"name": "pair-text-in", "stages": [{"kind": "finetune", "epochs": 1}, *RECIPE[:3]]}))
    return path
