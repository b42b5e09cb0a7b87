"""The finetune stage: run through the pipeline, and skipped where the model already has a trained head."""

import pytest

from conftest import run_recipe, run_stage

TINY = {"batch_size": 8, "learning_rate": 3e-3, "head_learning_rate": 3e-3, "patience": 0}
RECIPE = [{"kind": "finetune", "when": "always", "epochs": 2, **TINY}, {"kind": "export-onnx"}]


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_stage_runs_and_is_recorded(arch, request, tmp_path):
    rec, _files, _out = run_stage(request, tmp_path, "finetune", RECIPE, arch)
    assert rec["skipped"] is None and rec["metrics"]["dev"]["accuracy"] >= 0.5


def test_finetune_when_needed_keeps_a_trained_head(tmp_path, tiny_classifier_dir, tiny_sentiment_dir):
    """A model with a trained head for the data's labels is not fine-tuned again (when: needed, the default):
    the stage is recorded as skipped with its dev score, and the next stages get the input model."""
    result = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir,
                        [{"kind": "finetune"}, {"kind": "export-onnx", "fuse": False}])
    finetune, export = result.manifest["stages"]
    assert "already has a trained head" in finetune["skipped"]
    assert finetune["metrics"]["dev"]["accuracy"] >= 0.5 and not list((tmp_path / "art" / "stages" / "01-finetune").iterdir())
    assert finetune["state"]["model"] == str(tiny_classifier_dir) == export["state"]["model"]
