"""The export-torchscript stage: run through the pipeline (after torch int8), and its pt2 format."""

import pytest

from conftest import run_recipe, run_stage

RECIPE = [{"kind": "quantize", "mode": "torch-int8-dynamic"}, {"kind": "export-torchscript"}]


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_stage_runs_and_is_recorded(arch, request, tmp_path):
    rec, files, _out = run_stage(request, tmp_path, "export-torchscript", RECIPE, arch)
    assert files == ["model.pt"]
    assert rec["metrics"]["torch_quantization"]["mode"] == "torch-int8-dynamic"
    assert rec["validation"]["max_abs_logit_diff"] < 1e-3  # the trace equals the quantized eager model


def test_export_torchscript_pt2_through_the_pipeline(tmp_path, tiny_classifier_dir, tiny_sentiment_dir):
    result = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir,
                        [{"kind": "export-torchscript", "format": "pt2"}])
    rec = result.manifest["stages"][0]
    assert sorted(p.name for p in (tmp_path / "art" / "stages" / "01-export-torchscript").iterdir()) == ["model.pt2"]
    assert rec["validation"]["label_agreement"] == 1.0 and rec["validation"]["max_abs_logit_diff"] < 1e-4
    deploy = result.manifest["deploy"]
    assert (deploy["model"], deploy["format"], deploy["runtime"]) == ("model/model.pt2", "torch-export", "pytorch")
