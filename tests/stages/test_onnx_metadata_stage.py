"""The onnx-metadata stage (the worked example of docs/adding-a-stage.md): its place in a recipe, and a run
whose shipped file carries the labels and the target's token cap while answering exactly as before."""

import json
import re
from pathlib import Path

import numpy as np
import pytest

from edgebert.errors import ConfigError
from edgebert.stages.registry import check_order, parse_stage

REPO = Path(__file__).resolve().parents[2]
RECIPE = [{"kind": "export-onnx", "fuse": False}, {"kind": "onnx-metadata", "description": "tiny sentiment"}]


def test_needs_an_onnx_model_first():
    with pytest.raises(ConfigError, match="stage 1 'onnx-metadata' needs an ONNX model"):
        check_order([parse_stage(s, "r.yaml") for s in ({"kind": "onnx-metadata"}, {"kind": "export-onnx"})], "r.yaml")
    with pytest.raises(ConfigError, match="max_length"):
        parse_stage({"kind": "onnx-metadata", "max_length": 4}, "r.yaml")


def test_the_shipped_file_carries_labels_and_token_cap(request, tiny_classifier_dir, tmp_path):
    import onnxruntime as ort

    from conftest import run_stage

    stage, _files, out = run_stage(request, tmp_path, "onnx-metadata", RECIPE)
    manifest = json.loads((out / "manifest.json").read_text())
    shipped = out / manifest["deploy"]["model"]
    meta = ort.InferenceSession(str(shipped), providers=["CPUExecutionProvider"]).get_modelmeta()
    labels = json.loads((out / "labels.json").read_text())["labels"]
    assert json.loads(meta.custom_metadata_map["edgebert.labels"]) == labels
    assert meta.custom_metadata_map["edgebert.max_length"] == "128"  # the cpu target's shapes.max_length
    assert meta.description == "tiny sentiment"
    assert stage["validation"] == {"graph_unchanged": True}
    # the same answers as the export it came from, bit for bit
    from transformers import AutoTokenizer

    from edgebert.export import onnx_feeds

    exported = out / manifest["stages"][0]["state"]["onnx"]
    encoded = AutoTokenizer.from_pretrained(tiny_classifier_dir)(["a great film", "a dull and boring film"],
                                                                padding=True, return_tensors="np")
    outs = []
    for path in (exported, shipped):
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        outs.append(session.run(None, onnx_feeds([i.name for i in session.get_inputs()], encoded))[0])
    assert np.array_equal(outs[0], outs[1]) and exported.read_bytes() != shipped.read_bytes()


def test_the_guide_shows_this_stage_as_it_is():
    """docs/adding-a-stage.md quotes the stage module and this test file: they must not drift apart."""
    guide = (REPO / "docs" / "adding-a-stage.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", guide, flags=re.S)
    source = (REPO / "edgebert" / "stages" / "onnx_metadata.py").read_text(encoding="utf-8")
    assert source in blocks, "docs/adding-a-stage.md no longer shows edgebert/stages/onnx_metadata.py as it is"
