"""edgebert compare: two tiny models (a BERT and an ALBERT), compressed and measured in one run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import assert_clean_error
from edgebert.cli.main import main
from edgebert.compare import count_parameters, model_slug


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def test_compare_two_models_end_to_end(tiny_classifier_dir, tiny_albert_classifier_dir, tiny_sentiment_dir, tmp_path):
    out = tmp_path / "cmp"
    result = run("compare", tiny_classifier_dir, tiny_albert_classifier_dir, "--data", tiny_sentiment_dir,
                 "--target", "cpu", "--recipe", "quick", "--out", out, "--no-memory", "--rounds", 1,
                 "--latency-samples", 4, "--quiet")
    assert result.exit_code == 0, result.output
    res = json.loads((out / "compare.json").read_text())
    assert res["kind"] == "edgebert-compare" and res["targets"] == ["cpu"] and res["recipes"] == {"cpu": "quick"}
    rows = {(r["model"], r["target"]): r for r in res["rows"]}
    models = [str(tiny_classifier_dir), str(tiny_albert_classifier_dir)]
    assert set(rows) == {(m, t) for m in models for t in ("fp32", "cpu")}
    for r in rows.values():
        assert r["status"] == "ok", r
        assert 0.0 <= r["accuracy"] <= 1.0 and r["macro_f1"] is not None and r["macro_precision"] is not None
        assert r["p50_ms"] > 0 and r["p99_ms"] >= r["p50_ms"] and r["parameters"] > 0 and r["size_mb"] > 0
    # the deployed int8 ONNX file against the fp32 checkpoint it came from
    for m in models:
        assert rows[(m, "cpu")]["path"].endswith(".onnx") and "int8" in rows[(m, "cpu")]["precision"]
        assert rows[(m, "fp32")]["runtime"] == "pytorch" and rows[(m, "fp32")]["precision"] == "fp32"
    # the tiny ALBERT shares one layer across depth: fewer parameters than the tiny BERT of the same widths
    assert rows[(models[1], "fp32")]["parameters"] < rows[(models[0], "fp32")]["parameters"]
    md = (out / "compare.md").read_text()
    assert "macro F1" in md and "edgebert compare" in md and (out / "compare.png").stat().st_size > 0
    assert (out / "artifacts" / f"{model_slug(models[0])}-cpu" / "manifest.json").is_file()
    # the bench ran every variant in one run
    bench = json.loads((out / "bench" / "bench.json").read_text())
    assert len(bench["variants"]) == 4


def test_compare_one_bert_with_the_albert_a_recipe_makes_of_it(tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    """--target cpu --target cpu:RECIPE: one model under two recipes; the converted ALBERT gets its own fp32 row."""
    import yaml

    from edgebert.compare import split_target

    assert split_target("cpu:albert", "quick") == ("cpu", "albert") and split_target("cpu", "quick") == ("cpu", "quick")
    assert split_target("C:\\t\\x.yaml", None) == ("C:\\t\\x.yaml", None)  # a Windows path, not TARGET:RECIPE
    recipe = tmp_path / "tiny-albert.yaml"  # the albert recipe sized for the tiny BERT (hidden 32)
    recipe.write_text(yaml.safe_dump({"name": "tiny-albert", "stages": [
        {"kind": "finetune", "epochs": 1},
        {"kind": "albertize", "embedding_size": 16, "num_hidden_groups": 1},
        {"kind": "distill", "epochs": 1, "augment": 0, "batch_size": 8, "learning_rate": 3e-3, "patience": 0},
        {"kind": "export-onnx", "fuse": True}, {"kind": "quantize", "mode": "int8-dynamic", "max_accuracy_drop": 100.0}]}))
    out = tmp_path / "cmp"
    result = run("compare", tiny_classifier_dir, "--data", tiny_sentiment_dir, "--recipe", "quick", "--target", "cpu",
                 "--target", f"cpu:{recipe}", "--out", out, "--no-memory", "--rounds", 1, "--latency-samples", 4, "--quiet")
    assert result.exit_code == 0, result.output
    res = json.loads((out / "compare.json").read_text())
    assert res["targets"] == ["cpu", "cpu:tiny-albert"] and res["recipes"] == {"cpu": "quick", "cpu:tiny-albert": "tiny-albert"}
    assert res["columns"] == ["cpu", "cpu:tiny-albert fp32", "cpu:tiny-albert"]
    rows = {r["target"]: r for r in res["rows"]}
    assert set(rows) == {"fp32", "cpu", "cpu:tiny-albert fp32", "cpu:tiny-albert"}
    assert all(r["status"] == "ok" for r in rows.values()), rows
    albert = rows["cpu:tiny-albert fp32"]
    assert albert["runtime"] == "pytorch" and json.loads((Path(albert["path"]) / "config.json").read_text())["model_type"] == "albert"
    assert albert["parameters"] < rows["fp32"]["parameters"]  # factorised embedding, one shared layer
    assert rows["cpu:tiny-albert"]["path"].endswith(".onnx") and "int8" in rows["cpu:tiny-albert"]["precision"]
    assert "cpu:tiny-albert fp32" in (out / "compare.md").read_text()
    assert (out / "artifacts" / f"{model_slug(str(tiny_classifier_dir))}-cpu-tiny-albert" / "manifest.json").is_file()


def test_compare_refuses_bad_input_before_work(tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    assert_clean_error(run("compare", tiny_classifier_dir, "--data", tiny_sentiment_dir, "--out", tmp_path / "a"),
                       "at least two models")
    assert_clean_error(run("compare", tiny_classifier_dir, "--data", tiny_sentiment_dir, "--target", "cpu",
                           "--target", "cpu:no-such-recipe", "--out", tmp_path / "e"), "no-such-recipe")
    assert_clean_error(run("compare", tiny_classifier_dir, tiny_classifier_dir, "--data", tiny_sentiment_dir,
                           "--out", tmp_path / "b"), "given twice")
    assert_clean_error(run("compare", tiny_classifier_dir, "minilm", "--data", tiny_sentiment_dir, "--target", "tpu",
                           "--out", tmp_path / "c"), "Unknown target 'tpu'")
    foreign = tmp_path / "d"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    assert_clean_error(run("compare", tiny_classifier_dir, "minilm", "--data", tiny_sentiment_dir, "--out", foreign),
                       "did not write", "notes.txt")
    assert (foreign / "notes.txt").read_text() == "mine"
    assert not (tmp_path / "a").exists() and not (tmp_path / "c").exists()


def test_parameters_counted_once_per_tensor(tiny_albert_classifier_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgebert.export import export_onnx

    model = AutoModelForSequenceClassification.from_pretrained(tiny_albert_classifier_dir)
    params = sum(p.numel() for p in model.parameters())  # a shared tensor once
    assert count_parameters(tiny_albert_classifier_dir) == pytest.approx(params, rel=0.01)
    onnx_path = tmp_path / "m.onnx"
    export_onnx(model, AutoTokenizer.from_pretrained(tiny_albert_classifier_dir), onnx_path)
    assert count_parameters(onnx_path) == pytest.approx(params, rel=0.05)
    assert count_parameters(tmp_path / "m.ort") is None


def test_model_slug():
    assert model_slug("albert-base-v2") == "albert-base-v2"
    assert model_slug("sentence-transformers/all-MiniLM-L6-v2") == "all-MiniLM-L6-v2"
    assert model_slug("runs/my model") == "my-model"
