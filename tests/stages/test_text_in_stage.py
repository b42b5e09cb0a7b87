"""The text-in stage: its place in a recipe, and a mobile-style run (int8, text-in, .ort) whose shipped file
takes strings and answers as the token-in model did."""

import pytest
import yaml

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


def test_int8_text_in_ort_through_the_pipeline(tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    pytest.importorskip("onnxruntime_extensions", reason="text-in needs onnxruntime-extensions (edgebert[textin])")
    from edgebert.pipeline import compress
    from edgebert.runtime import Classifier

    recipe = tmp_path / "textin.yaml"
    recipe.write_text(yaml.safe_dump({"name": "textin", "stages": [
        {"kind": "export-onnx", "fuse": False}, {"kind": "quantize", "max_accuracy_drop": 100.0},
        {"kind": "text-in"}, {"kind": "export-mobile", "check_usability": False}]}))
    result = compress(str(tiny_classifier_dir), "mobile", data=str(tiny_sentiment_dir), out=tmp_path / "art",
                      recipe=recipe, progress=False, cache=False)
    by_kind = {s["kind"]: s for s in result.manifest["stages"]}
    v = by_kind["text-in"]["validation"]
    assert v["token_mismatches"] == 0 and v["label_mismatches"] == 0 and v["texts"] > 0
    assert by_kind["text-in"]["metrics"]["tokenizer"] and by_kind["export-mobile"]["validation"]["label_agreement"] == 1.0
    assert result.manifest["deploy"]["model"].endswith(".ort")
    clf = Classifier.load(result.out)
    assert clf.text_in
    labels = [p.label for p in clf.predict(["a great film", "a dull and boring film"])]
    assert set(labels) <= {"positive", "negative"}
