"""Sentence-pair tasks end to end: compress scores the pairs on the ONNX side (export validation, the
int8 budget search, the summary), and the artifact takes pairs in the runtime, ``predict``, ``serve``,
``calibrate`` and ``bench``.

The tiny pair task (conftest ``tiny_pair_dir``) labels each row by the sentiment of its second
sentence; every first sentence comes with every second one, so scoring the first sentence alone is
at chance, and a pipeline that drops the second sentence anywhere shows it as a false accuracy drop.
"""

from __future__ import annotations

import csv
import json

import pytest
import yaml
from click.testing import CliRunner
from conftest import assert_clean_error

from edgebert.cli import main
from edgebert.errors import DataError
from edgebert.pipeline import compress

PAIR_RECIPE = [
    {"kind": "finetune", "epochs": 8, "batch_size": 8, "learning_rate": 3e-3, "head_learning_rate": 3e-3,
     "patience": 0, "seed": 0},
    {"kind": "export-onnx", "fuse": True},
    {"kind": "quantize", "mode": "int8-dynamic", "max_accuracy_drop": 1.0},
]


@pytest.fixture(scope="module")
def pair_run(tmp_path_factory, tiny_bert_dir, tiny_pair_dir):
    d = tmp_path_factory.mktemp("pair-run")
    recipe = d / "pairs.yaml"
    recipe.write_text(yaml.safe_dump({"name": "pairs", "stages": PAIR_RECIPE}), encoding="utf-8")
    return compress(str(tiny_bert_dir), "cpu", data=str(tiny_pair_dir), out=d / "art", recipe=recipe,
                    progress=False)


def _dev(tiny_pair_dir, labels):
    from edgebert.data import load_dataset

    return load_dataset(str(tiny_pair_dir)).with_labels(list(labels)).split("dev")


def test_the_tiny_task_needs_the_second_sentence(pair_run, tiny_pair_dir):
    """First sentences alone are at chance on the exported model; with their pairs the model is right."""
    from transformers import AutoTokenizer

    from edgebert.compress.quantize import onnx_accuracy_fn

    out = pair_run.out
    labels = json.loads((out / "labels.json").read_text())["labels"]
    dev = _dev(tiny_pair_dir, labels)
    tok = AutoTokenizer.from_pretrained(out / "tokenizer")
    model = str(out / "model" / "model.onnx")
    assert onnx_accuracy_fn(tok, dev.texts, dev.labels)(model) == pytest.approx(0.5, abs=0.1)
    assert onnx_accuracy_fn(tok, dev.texts, dev.labels, pairs=dev.text_pairs)(model) >= 0.9


def test_onnx_stages_and_summary_score_the_pairs(pair_run):
    manifest = pair_run.manifest
    by_kind = {s["kind"]: s for s in manifest["stages"]}
    torch_acc = by_kind["finetune"]["metrics"]["dev"]["accuracy"]
    assert torch_acc >= 0.9
    export = by_kind["export-onnx"]
    assert export["metrics"]["dev_accuracy"] == pytest.approx(torch_acc)  # was 0.5: first sentences only
    assert export["validation"]["label_agreement"] >= 0.99
    q = by_kind["quantize"]["metrics"]
    assert q["fp32_dev_accuracy"] == pytest.approx(export["metrics"]["dev_accuracy"])
    assert q["accuracy_drop_points"] <= 1.0 and q["within_budget"]
    summary = manifest["summary"]
    assert summary["accuracy_drop_points"] <= 1.0 and summary["within_accuracy_budget"]  # no false drop
    assert manifest["deploy"]["text_pair"] is True


def test_calibration_feeds_carry_the_pairs(pair_run, tiny_pair_dir):
    """int8-static calibrates on the inputs the model runs: pairs, second segment typed 1."""
    from transformers import AutoTokenizer

    from edgebert.compress.quantize import calibration_feeds

    tok = AutoTokenizer.from_pretrained(pair_run.out / "tokenizer")
    dev = _dev(tiny_pair_dir, ["negative", "positive"])
    names = ["input_ids", "attention_mask", "token_type_ids"]
    feeds = calibration_feeds(tok, dev.texts, names, pairs=dev.text_pairs, samples=8, batch_size=4)
    assert len(feeds) == 2 and all((f["token_type_ids"] == 1).any(axis=1).all() for f in feeds)
    with pytest.raises(DataError, match="one text pair per text"):
        calibration_feeds(tok, dev.texts, names, pairs=dev.text_pairs[:3])


def test_runtime_classifies_pairs(pair_run, tiny_pair_dir):
    from edgebert.runtime import Classifier

    clf = Classifier.load(pair_run.out)
    assert clf.text_pair is True
    dev = _dev(tiny_pair_dir, clf.labels)
    preds = clf.predict(dev.texts, dev.text_pairs)
    assert sum(p.index == y for p, y in zip(preds, dev.labels)) / len(preds) >= 0.9
    with pytest.raises(DataError, match="classifies sentence pairs"):
        clf.predict(dev.texts)


def test_predict_cli_reads_two_text_columns(pair_run, tiny_pair_dir, tmp_path):
    runner = CliRunner()
    art = str(pair_run.out)
    res = runner.invoke(main, ["predict", art, "--input", str(tiny_pair_dir / "dev.csv"), "--json"])
    assert res.exit_code == 0, res.output
    rows = json.loads(res.output)
    with open(tiny_pair_dir / "dev.csv", newline="", encoding="utf-8") as f:
        want = list(csv.DictReader(f))
    assert [(r["text"], r["text_pair"]) for r in rows] == [(w["sentence1"], w["sentence2"]) for w in want]
    assert sum(r["label"] == w["label"] for r, w in zip(rows, want)) / len(rows) >= 0.9

    res = runner.invoke(main, ["predict", art, "the movie", "what a good film", "--text-pair", "i hate it",
                               "--text-pair", "i love it", "--json"])
    assert res.exit_code == 0, res.output
    assert [r["label"] for r in json.loads(res.output)] == ["negative", "positive"]

    named = tmp_path / "named.jsonl"
    named.write_text('{"a": "my order", "b": "great great movie"}\n', encoding="utf-8")
    res = runner.invoke(main, ["predict", art, "--input", str(named), "--text-column", "a",
                               "--text-pair-column", "b", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)[0]["label"] == "positive", res.output

    res = runner.invoke(main, ["predict", art, "the movie"])
    assert_clean_error(res, "classifies sentence pairs", "--text-pair")
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    holes = tmp_path / "holes.csv"
    holes.write_text("sentence1,sentence2\nthe movie,i love it\nthe movie,\n", encoding="utf-8")
    res = runner.invoke(main, ["predict", art, "--input", str(holes)])
    assert_clean_error(res, "holes.csv:3:", "'sentence2' field is empty")
    assert res.exit_code == 2


def test_serve_takes_text_pair(pair_run):
    starlette_testclient = pytest.importorskip("starlette.testclient")
    from edgebert.runtime import Classifier, create_app

    clf = Classifier.load(pair_run.out)
    with starlette_testclient.TestClient(create_app(clf)) as c:
        r = c.post("/predict", json={"text": "the movie", "text_pair": "i love it"})
        assert r.status_code == 200 and r.json()["prediction"] == clf.predict("the movie", "i love it").to_dict()
        r = c.post("/predict", json={"texts": ["the movie", "the movie"], "text_pairs": ["i hate it", "fun fun fun"]})
        assert [p["label"] for p in r.json()["predictions"]] == ["negative", "positive"]
        r = c.post("/predict", json={"text": "the movie"})
        assert r.status_code == 422 and "classifies sentence pairs" in r.json()["error"]
        r = c.post("/predict", json={"text": "the movie", "text_pair": " "})
        assert r.status_code == 422 and "'text_pair' is empty" in r.json()["error"]
        h = c.get("/health").json()
        assert h["text_pair"] is True and h["provider"] == "CPUExecutionProvider"


def test_calibrate_scores_the_pairs(pair_run, tiny_pair_dir, tmp_path):
    res = CliRunner().invoke(main, ["calibrate", str(pair_run.out), "--data", str(tiny_pair_dir), "--precision",
                                    "0.9", "--json", "--out", str(tmp_path / "cal.json")])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "cal.json").read_text())
    assert report["accuracy"] >= 0.9 and report["eval"]["accuracy"] >= 0.9


def test_bench_scores_and_measures_the_pairs(pair_run, tiny_pair_dir, tmp_path):
    from edgebert.bench import bench

    result = bench([str(pair_run.out)], str(tiny_pair_dir), split="dev", out=tmp_path / "b", rounds=1, warmup=1,
                   latency_samples=4, progress=False)
    variant = result.results["variants"][0]
    assert variant["status"] == "ok", variant["error"]
    assert variant["accuracy"]["accuracy"] >= 0.9
    assert variant["memory"] and "error" not in variant["memory"], variant["memory"]
    assert variant["providers"] == ["CPUExecutionProvider"] and variant["provider_fallback"] is None
