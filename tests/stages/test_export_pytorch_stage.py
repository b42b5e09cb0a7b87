"""The export-pytorch stage: run through the pipeline (an fp16 checkpoint)."""

import json

import pytest

from conftest import run_stage

RECIPE = [{"kind": "export-pytorch", "dtype": "float16"}]


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_stage_runs_and_is_recorded(arch, request, tmp_path):
    rec, files, out = run_stage(request, tmp_path, "export-pytorch", RECIPE, arch)
    assert "config.json" in files and "model.safetensors" in files
    assert rec["validation"]["label_agreement"] >= 0.99
    config = json.loads((out / "model" / "config.json").read_text())
    assert config.get("torch_dtype", config.get("dtype")) == "float16"  # transformers 4 / 5 spelling
