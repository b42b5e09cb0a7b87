"""Out-of-scope texts as one more class (edgebert.data.oos) and the CLINC150 metrics."""

from __future__ import annotations

import json

import pytest

from edgebert.data import load_dataset
from edgebert.data.oos import DEFAULT_OOS_LABEL, read_oos_texts, with_out_of_scope
from edgebert.errors import DataError
from edgebert.metrics import out_of_scope_metrics

OOS = [f"what is the weather like in city number {i}" for i in range(30)]


def test_oos_texts_become_a_held_out_class(tiny_sentiment_dir, tmp_path):
    path = tmp_path / "oos.txt"
    path.write_text("\n".join(OOS + ["", OOS[0]]) + "\n", encoding="utf-8")
    texts = read_oos_texts(path)
    assert texts == OOS  # empty lines and repeats dropped, file order kept
    ds = load_dataset(str(tiny_sentiment_dir))
    out = with_out_of_scope(ds, texts, seed=0)
    assert out.label_names == [*ds.label_names, DEFAULT_OOS_LABEL]
    oos = len(ds.label_names)
    per_split = {k: [t for t, y in zip(s.texts, s.labels) if y == oos] for k, s in out.splits.items()}
    assert sum(len(v) for v in per_split.values()) == len(OOS)
    assert len(per_split["dev"]) == 6 and len(per_split["test"]) == 6 and len(per_split["train"]) == 18
    assert not set(per_split["train"]) & (set(per_split["dev"]) | set(per_split["test"]))
    for k, s in ds.splits.items():  # in-scope rows unchanged
        assert out.splits[k].texts[:len(s)] == s.texts and out.splits[k].labels[:len(s)] == s.labels
    assert with_out_of_scope(ds, texts, seed=0).splits["dev"].texts == out.splits["dev"].texts  # seeded


def test_oos_file_with_a_text_column(tmp_path):
    path = tmp_path / "oos.jsonl"
    path.write_text("\n".join(json.dumps({"utterance": t}) for t in OOS), encoding="utf-8")
    assert read_oos_texts(path) == OOS


@pytest.mark.parametrize("content, needle", [("a\nb\n", "at least 10"), (None, "not found")])
def test_bad_oos_files(tmp_path, content, needle):
    path = tmp_path / "oos.txt"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match=needle):
        read_oos_texts(path)


def test_oos_label_clash_is_refused(tiny_sentiment_dir):
    ds = load_dataset(str(tiny_sentiment_dir))
    with pytest.raises(DataError, match="already has a label 'positive'"):
        with_out_of_scope(ds, OOS, label="positive")


def test_out_of_scope_metrics():
    # labels 0, 1 in scope, 2 out of scope; -1 = below the threshold (answered as out of scope)
    m = out_of_scope_metrics([0, 1, 1, 2, 2, 2, 2], [0, 2, 1, 2, -1, 0, 2], oos_index=2)
    assert m["in_scope_accuracy"] == pytest.approx(2 / 3)
    assert m["out_of_scope_recall"] == pytest.approx(3 / 4)
    assert m["out_of_scope_precision"] == pytest.approx(3 / 4)
    assert m["in_scope_n"] == 3 and m["out_of_scope_n"] == 4


@pytest.fixture(scope="module")
def oos_model(tmp_path_factory, tiny_bert_dir, tiny_sentiment_dir):
    """(model folder, out-of-scope file): the tiny BERT fine-tuned on the tiny sentiment task plus OOS."""
    from conftest import _tiny_training
    from edgebert.train import finetune

    d = tmp_path_factory.mktemp("oos")
    oos = d / "oos.txt"
    oos.write_text("\n".join(OOS), encoding="utf-8")
    ds = load_dataset(str(tiny_sentiment_dir), oos_data=oos)
    finetune(str(tiny_bert_dir), ds, out=d / "m", config=_tiny_training(), progress=False)
    return d / "m", oos


def test_a_model_trained_with_oos_texts_is_scored_on_them(oos_model, tiny_bert_dir, tiny_sentiment_dir, tmp_path):
    """finetune --oos-data trains the extra class; eval reports in-scope accuracy and out-of-scope recall
    on held-out out-of-scope texts; a model without the class is refused by name."""
    from click.testing import CliRunner

    from conftest import _tiny_training
    from edgebert.cli.main import main
    from edgebert.evaluation import evaluate
    from edgebert.train import finetune

    model, oos = oos_model
    ds = load_dataset(str(tiny_sentiment_dir), oos_data=oos)
    assert ds.out_of_scope_label == DEFAULT_OOS_LABEL and ds.label_names[-1] == DEFAULT_OOS_LABEL
    m = evaluate(model, ds, split="test")
    o = m["out_of_scope"]
    assert o["out_of_scope_n"] == 6 and o["in_scope_n"] == len(load_dataset(str(tiny_sentiment_dir)).split("test"))
    assert o["out_of_scope_recall"] >= 0.5 and o["in_scope_accuracy"] >= 0.5
    result = CliRunner().invoke(main, ["eval", "--model", str(model), "--data", str(tiny_sentiment_dir),
                                       "--oos-data", str(oos)])
    assert result.exit_code == 0 and "out-of-scope recall" in result.output, result.output
    # a model without the class: the label is named
    other = tmp_path / "plain"
    finetune(str(tiny_bert_dir), str(tiny_sentiment_dir), out=other, config=_tiny_training(), progress=False)
    result = CliRunner().invoke(main, ["eval", "--model", str(other), "--data", str(tiny_sentiment_dir),
                                       "--oos-data", str(oos)])
    assert result.exit_code == 2 and "out_of_scope" in result.output
    with pytest.raises(DataError, match="--oos-data"):
        load_dataset(str(tiny_sentiment_dir), oos_label="none_of_these")


def test_calibrate_for_out_of_scope_recall(oos_model, tiny_sentiment_dir, tmp_path):
    """calibrate --oos-recall writes the threshold and names abstentions after the out-of-scope class, so
    predict answers out_of_scope for texts below it as for texts of the class."""
    import numpy as np
    from click.testing import CliRunner

    from conftest import build_runtime_artifact
    from edgebert.cli.main import main
    from edgebert.runtime import Classifier
    from edgebert.runtime.calibration import out_of_scope_threshold

    model, oos = oos_model
    art = build_runtime_artifact(model, tmp_path / "art")
    result = CliRunner().invoke(main, ["calibrate", str(art), "--data", str(tiny_sentiment_dir), "--oos-data", str(oos),
                                       "--oos-recall", "1.0", "--write", "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((art / "manifest.json").read_text())
    assert manifest["deploy"]["unknown_label"] == DEFAULT_OOS_LABEL
    threshold = manifest["deploy"]["threshold"]
    assert manifest["calibration"]["at_threshold"]["out_of_scope_recall"] == 1.0
    clf = Classifier.load(art)
    ds = load_dataset(str(tiny_sentiment_dir), oos_data=oos)
    dev = ds.split("dev")
    answers = [p.label for p in clf.predict([t for t, y in zip(dev.texts, dev.labels) if y == 2])]
    assert answers and set(answers) == {DEFAULT_OOS_LABEL}
    assert threshold >= 0.0
    # without out-of-scope rows there is nothing to reach; the rule itself on a hand-made case
    probs = np.array([[0.9, 0.05, 0.05], [0.6, 0.3, 0.1], [0.2, 0.1, 0.7], [0.5, 0.4, 0.1]])
    found = out_of_scope_threshold(probs, [0, 2, 2, 2], 2, recall=2 / 3)
    assert found["without"]["out_of_scope_recall"] == pytest.approx(1 / 3)
    assert found["threshold"] == pytest.approx(0.5) and found["threshold"] > 0.5  # catches the 0.5, not the 0.6
    assert found["at_threshold"]["out_of_scope_recall"] == pytest.approx(2 / 3)
    assert found["at_threshold"]["in_scope_accuracy"] == 1.0
    # a model without the class is refused with what to do
    result = CliRunner().invoke(main, ["calibrate", str(art), "--data", str(tiny_sentiment_dir), "--oos-recall", "0.9"])
    assert result.exit_code == 2 and "--oos-data" in result.output


def test_bench_reports_out_of_scope_metrics_with_the_calibrated_threshold(oos_model, tiny_sentiment_dir, tmp_path):
    """bench --oos-data scores in-scope accuracy and out-of-scope recall per variant; an artifact's calibrated
    threshold is applied to its deployed file as predict applies it (below it: not answered = out of scope)."""
    from click.testing import CliRunner

    from conftest import build_runtime_artifact
    from edgebert.cli.main import main

    model, oos = oos_model
    art = build_runtime_artifact(model, tmp_path / "art")
    manifest_path = art / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["deploy"]["threshold"] = 0.999  # nearly nothing is answered: every out-of-scope text is caught
    manifest_path.write_text(json.dumps(manifest))
    out = tmp_path / "bench"
    result = CliRunner().invoke(main, ["bench", str(model), str(art), "--data", str(tiny_sentiment_dir), "--oos-data",
                                       str(oos), "--out", str(out), "--no-memory", "--rounds", "1",
                                       "--latency-samples", "4", "--quiet"])
    assert result.exit_code == 0, result.output
    variants = {v["kind"]: v for v in json.loads((out / "bench.json").read_text())["variants"]}
    plain, calibrated = variants["hf"]["accuracy"], variants["onnx"]["accuracy"]
    assert plain["out_of_scope"]["out_of_scope_n"] == 6 and calibrated["out_of_scope"]["out_of_scope_recall"] == 1.0
    assert calibrated["out_of_scope"]["in_scope_accuracy"] < plain["out_of_scope"]["in_scope_accuracy"]
    assert any("0.999" in n for n in variants["onnx"]["notes"])
    assert "OOS recall" in (out / "bench.md").read_text() and "out_of_scope_recall" in (out / "bench.csv").read_text()
