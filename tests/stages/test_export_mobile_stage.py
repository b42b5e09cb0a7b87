"""The export-mobile stage: run through the pipeline after int8 quantization."""

import json

import pytest

from conftest import run_stage

RECIPE = [{"kind": "export-onnx", "fuse": False}, {"kind": "quantize", "max_accuracy_drop": 100.0},
          {"kind": "export-mobile"}]


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_stage_runs_and_is_recorded(arch, request, tmp_path):
    rec, files, out = run_stage(request, tmp_path, "export-mobile", RECIPE, arch)
    assert files == ["EdgebertClassifier.kt", "EdgebertClassifier.swift", "INTEGRATION.md", "model.ort",
                     "required_operators.config"]  # everything an app needs, with the guide
    assert rec["validation"]["label_agreement"] == 1.0
    assert any(line.startswith("ai.onnx") for line in rec["metrics"]["required_operators"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["deploy"]["model"] == "model/model.ort" and manifest["deploy"]["format"] == "ort"
