"""The export-onnx stage: run through the pipeline, and what an export without quantize deploys."""

import pytest

from conftest import run_recipe, run_stage

RECIPE = [{"kind": "export-onnx", "fuse": False}]


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_stage_runs_and_is_recorded(arch, request, tmp_path):
    rec, files, _out = run_stage(request, tmp_path, "export-onnx", RECIPE, arch)
    assert files == ["model.onnx"]
    assert rec["validation"]["max_abs_logit_diff"] < 1e-3 and rec["validation"]["label_agreement"] == 1.0


def test_cpu_deploy_reads_precision_from_the_file(tmp_path, tiny_classifier_dir, tiny_sentiment_dir):
    """A cpu target (int8) run without quantize deploys an fp32 file: deploy says fp32, not the target's int8."""
    result = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, [{"kind": "export-onnx", "fuse": False}])
    deploy = result.manifest["deploy"]
    assert (deploy["runtime"], deploy["precision"]) == ("onnxruntime", "fp32")
    assert (deploy["target_runtime"], deploy["target_precision"]) == ("onnxruntime", "int8")
    assert "fallback" not in deploy and "the target runs onnxruntime int8" in (result.out / "report.md").read_text()
