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


def test_a_model_trained_with_oos_texts_is_scored_on_them(tiny_bert_dir, tiny_sentiment_dir, tmp_path):
    """finetune --oos-data trains the extra class; eval reports in-scope accuracy and out-of-scope recall
    on held-out out-of-scope texts; a model without the class is refused by name."""
    from click.testing import CliRunner

    from conftest import _tiny_training
    from edgebert.cli.main import main
    from edgebert.evaluation import evaluate
    from edgebert.train import finetune

    oos = tmp_path / "oos.txt"
    oos.write_text("\n".join(OOS), encoding="utf-8")
    ds = load_dataset(str(tiny_sentiment_dir), oos_data=oos)
    assert ds.out_of_scope_label == DEFAULT_OOS_LABEL and ds.label_names[-1] == DEFAULT_OOS_LABEL
    res = finetune(str(tiny_bert_dir), ds, out=tmp_path / "m", config=_tiny_training(), progress=False)
    m = evaluate(res.out, ds, split="test")
    o = m["out_of_scope"]
    assert o["out_of_scope_n"] == 6 and o["in_scope_n"] == len(load_dataset(str(tiny_sentiment_dir)).split("test"))
    assert o["out_of_scope_recall"] >= 0.5 and o["in_scope_accuracy"] >= 0.5
    result = CliRunner().invoke(main, ["eval", "--model", str(tmp_path / "m"), "--data", str(tiny_sentiment_dir),
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
