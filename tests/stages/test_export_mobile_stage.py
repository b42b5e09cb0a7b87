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


def test_a_sentencepiece_token_in_artifact_ships_no_wordpiece_samples(tiny_sentiment_dir, tmp_path):
    """The samples port BERT's WordPiece for token-in models: an ALBERT with its SentencePiece tokenizer gets the
    guide and the reason instead of samples that would refuse it at load."""
    import yaml

    from conftest import REPO
    from edgebert.pipeline import compress

    recipe = tmp_path / "spm-mobile.yaml"
    recipe.write_text(yaml.safe_dump({"name": "spm-mobile", "stages": [
        {"kind": "finetune", "epochs": 1}, *RECIPE[:2], {"kind": "export-mobile", "check_usability": False}]}))
    result = compress(str(REPO / "tests" / "data" / "tiny-albert-spm"), "mobile", data=str(tiny_sentiment_dir),
                      out=tmp_path / "art", recipe=recipe, progress=False)
    files = sorted(p.name for p in (tmp_path / "art" / "model").iterdir())
    assert files == ["INTEGRATION.md", "model.ort", "required_operators.config"]
    note = result.manifest["stages"][-1]["metrics"]["app_samples"]
    assert "Unigram" in note and "text-in" in note
