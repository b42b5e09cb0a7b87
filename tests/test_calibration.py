"""edgebert.runtime.calibration and ``edgebert calibrate``: the threshold rule, on crafted and random
scores, and the command on the tiny artifact (threshold written into the manifest, read by the runtime)."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import CLI_WITHOUT_TORCH, NEGATIVE, POSITIVE, REPO, assert_clean_error

from edgebert.cli import main
from edgebert.errors import ConfigError, LabelMismatchError
from edgebert.runtime import Classifier
from edgebert.runtime.calibration import calibrate, selective_metrics


class Scored:
    """A stand-in classifier returning fixed probabilities (rows follow the texts given)."""

    def __init__(self, labels, probs):
        self.labels = tuple(labels)
        self._probs = np.asarray(probs, dtype=np.float64)

    def predict_proba(self, texts):
        return self._probs[[int(t) for t in texts]]


def two_class(confidences, correct):
    """Rows whose top probability is ``confidences[i]``, on label 'a'; true label 'a' when correct."""
    probs = [[c, 1 - c] for c in confidences]
    labels = ["a" if ok else "b" for ok in correct]
    return Scored(["a", "b"], probs), [str(i) for i in range(len(probs))], labels


def test_threshold_answers_the_most_inputs_at_the_target():
    # by confidence: 0.99 ok, 0.95 ok, 0.90 wrong, 0.85 ok, 0.80 ok, 0.70 wrong, 0.60 wrong
    clf, texts, labels = two_class([0.9, 0.99, 0.6, 0.85, 0.95, 0.7, 0.8],
                                   [False, True, False, True, True, False, True])
    r = calibrate(clf, texts, labels, precision=0.75)
    # answering the top 5 gives 4/5 = 0.8 >= 0.75; top 6: 4/6 < 0.75
    assert r.threshold == 0.8 and r.answered == 5 and r.coverage == pytest.approx(5 / 7)
    assert r.answered_accuracy == pytest.approx(0.8) and r.accuracy == pytest.approx(4 / 7)
    r = calibrate(clf, texts, labels, precision=0.9)  # top 2 only (top 3 is 2/3)
    assert r.threshold == 0.95 and r.answered == 2 and r.answered_accuracy == 1.0
    r = calibrate(clf, texts, labels, precision=0.5)  # everything reaches 4/7 > 0.5
    assert r.threshold == 0.0 and r.coverage == 1.0
    assert [p["threshold"] for p in r.curve][:3] == [0.0, 0.05, 0.1] and r.curve[-1]["threshold"] == 1.0


def test_ties_are_never_split():
    # two inputs share 0.9, one right one wrong: a threshold answers both or neither
    clf, texts, labels = two_class([0.99, 0.9, 0.9, 0.6], [True, True, False, True])
    r = calibrate(clf, texts, labels, precision=0.99)
    assert r.threshold == 0.99 and r.answered == 1
    r = calibrate(clf, texts, labels, precision=0.75)  # 0.99 + both 0.9s = 2/3 < 0.75; all four = 3/4
    assert r.threshold == 0.0 and r.answered == 4


def test_unreachable_target():
    clf, texts, labels = two_class([0.9, 0.8], [False, True])
    r = calibrate(clf, texts, labels, precision=0.99)
    assert not r.reached and r.threshold is None and r.answered == 0
    assert r.best_accuracy == pytest.approx(0.5)
    assert r.to_dict()["reached"] is False


@pytest.mark.parametrize("seed", range(5))
def test_random_scores_meet_the_target_and_cannot_answer_more(seed):
    rng = np.random.default_rng(seed)
    n, k = 300, 5
    logits = rng.normal(size=(n, k)) * 3
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    y = np.where(rng.random(n) < 0.7, probs.argmax(1), rng.integers(0, k, n))  # ~75% right, confident ones more
    clf = Scored([f"l{i}" for i in range(k)], probs)
    r = calibrate(clf, [str(i) for i in range(n)], [f"l{i}" for i in y], precision=0.9)
    assert r.reached
    got = selective_metrics(probs, y, r.threshold)
    assert got["answered_accuracy"] >= 0.9 and got["answered"] == r.answered
    conf = probs.max(1)
    for lower in conf[conf < r.threshold]:  # any threshold answering more falls below the target
        assert selective_metrics(probs, y, float(lower))["answered_accuracy"] < 0.9


def test_bad_arguments():
    clf, texts, labels = two_class([0.9], [True])
    with pytest.raises(ConfigError, match="precision"):
        calibrate(clf, texts, labels, precision=0)
    with pytest.raises(LabelMismatchError, match="'zebra'"):
        calibrate(clf, texts, ["zebra"])


# -- edgebert calibrate -------------------------------------------------------------------------------

@pytest.fixture()
def artifact(tiny_artifact_dir, tmp_path):
    return shutil.copytree(tiny_artifact_dir, tmp_path / "art")


def _write_csv(path, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        w.writerows(rows)
    return path


def test_calibrate_cli_writes_the_threshold_the_runtime_reads(artifact, tmp_path):
    # dev: the tiny task plus inputs the model has never seen, labelled with their true sentiment
    rows = [(t, "positive") for t in POSITIVE] + [(t, "negative") for t in NEGATIVE]
    odd = [("i do not hate this", "positive"), ("not good", "negative"), ("no fun", "negative"),
           ("not boring", "positive"), ("i was not in love with it", "negative")]
    data = tmp_path / "data"
    data.mkdir()
    _write_csv(data / "train.csv", rows + odd)
    _write_csv(data / "dev.csv", rows + odd)
    _write_csv(data / "test.csv", rows)
    clf = Classifier.load(artifact)
    dev_texts = [t for t, _ in rows + odd]
    dev_labels = [lab for _, lab in rows + odd]
    expected = calibrate(clf, dev_texts, dev_labels, precision=0.95)

    res = CliRunner().invoke(main, ["calibrate", str(artifact), "--data", str(data), "--precision", "0.95",
                                    "--write", "--json", "--out", str(tmp_path / "cal.json")])
    assert res.exit_code == 0, res.output
    report = json.loads(res.output[: res.output.rindex("}") + 1])
    assert report["threshold"] == pytest.approx(expected.threshold)
    assert 0 < report["threshold"] < 1 and report["coverage"] < 1  # the unseen inputs make it abstain
    assert report["coverage"] == pytest.approx(expected.coverage)
    assert report["eval"]["split"] == "test" and report["eval"]["n"] == len(rows)
    assert json.loads((tmp_path / "cal.json").read_text())["threshold"] == report["threshold"]
    command = report["command"]
    assert command.startswith(f"edgebert calibrate {artifact} --data {data} ")
    for part in ("--precision 0.95", "--write", f"--out {tmp_path / 'cal.json'}", "--json"):
        assert part in command
    assert "--split" not in command  # only what was typed
    manifest = json.loads((artifact / "manifest.json").read_text())
    assert manifest["deploy"]["threshold"] == pytest.approx(expected.threshold)
    assert manifest["deploy"]["model"] == "model/model.onnx"  # the rest of deploy is kept
    assert manifest["calibration"]["target_precision"] == 0.95
    assert Classifier.load(artifact).threshold == pytest.approx(expected.threshold)

    text = CliRunner().invoke(main, ["calibrate", str(artifact), "--data", str(data)])
    assert text.exit_code == 0, text.output
    assert "Threshold" in text.output and "On test" in text.output and "written" not in text.output


def test_calibrate_cli_errors(artifact, tmp_path):
    runner = CliRunner()
    assert_clean_error(runner.invoke(main, ["calibrate", str(artifact)]), "--data")
    wrong = tmp_path / "wrong"
    wrong.mkdir()  # every label flipped: no threshold reaches any precision
    _write_csv(wrong / "train.csv", [(t, "negative") for t in POSITIVE] + [(t, "positive") for t in NEGATIVE])
    before = (artifact / "manifest.json").read_text()
    res = runner.invoke(main, ["calibrate", str(artifact), "--data", str(wrong / "train.csv"),
                               "--dev", str(wrong / "train.csv"), "--precision", "0.9", "--write"])
    assert_clean_error(res, "No threshold reaches precision 0.9", "nothing was written")
    assert (artifact / "manifest.json").read_text() == before
    other = tmp_path / "other"
    other.mkdir()
    _write_csv(other / "train.csv", [("a", "cats"), ("b", "dogs")] * 10)
    assert_clean_error(runner.invoke(main, ["calibrate", str(artifact), "--data", str(other)]),
                       "not labels of the model")
    assert_clean_error(runner.invoke(main, ["calibrate", str(artifact), "--data", str(other), "--precision", "0"]),
                       "--precision")


def test_calibrate_refuses_outputs_it_cannot_write_before_scoring(artifact, tiny_sentiment_dir, read_only_dir,
                                                                  monkeypatch):
    from conftest import make_read_only

    import edgebert.runtime.calibration as calibration

    monkeypatch.setattr(calibration, "calibrate", lambda *a, **k: pytest.fail("scored before checking"))
    runner = CliRunner()
    res = runner.invoke(main, ["calibrate", str(artifact), "--data", str(tiny_sentiment_dir),
                               "--out", str(read_only_dir / "cal.json")])
    assert_clean_error(res, f"Cannot write to '{read_only_dir}'", "Choose another --out")
    make_read_only(artifact, monkeypatch)
    try:
        res = runner.invoke(main, ["calibrate", str(artifact), "--data", str(tiny_sentiment_dir), "--write"])
    finally:
        artifact.chmod(0o755)
    assert_clean_error(res, f"Cannot write to '{artifact}'", f"cp -r {artifact} COPY", "drop --write")
    assert res.exit_code == 2 and res.output.count("\n") == 1


def test_calibrate_cli_runs_with_torch_and_transformers_blocked(artifact, tiny_sentiment_dir):
    proc = subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, "calibrate", str(artifact),
                           "--data", str(tiny_sentiment_dir), "--json"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["eval"]["split"] == "test"
