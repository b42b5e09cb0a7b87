"""The CLI under Click's CliRunner: commands work, and bad input gives a message, not a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from conftest import CLI_WITHOUT_TORCH, REPO, assert_clean_error

from edgebert.cli import main


def run(*args, **kwargs):
    result = CliRunner().invoke(main, [str(a) for a in args], **kwargs)
    return result


def test_help_is_fast_and_lists_commands():
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", "from edgebert.cli import main; main()", "--help"],
                          capture_output=True, text=True, check=True)
    assert time.perf_counter() - t0 < 10
    for cmd in ("finetune", "eval", "models"):
        assert cmd in proc.stdout
    # --help must not import torch
    code = "import sys; from edgebert.cli import main; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_models_lists_the_offline_alias(minilm_dir):
    r = run("models")
    assert r.exit_code == 0
    assert "minilm" in r.output and "available offline: yes" in r.output


def test_finetune_and_eval_tiny(tiny_bert_dir, tiny_sentiment_dir, tmp_path):
    out = tmp_path / "m"
    r = run("finetune", "--model", tiny_bert_dir, "--data", tiny_sentiment_dir, "--out", out,
            "--epochs", 3, "--batch-size", 8, "--learning-rate", 1e-3, "--quiet")
    assert r.exit_code == 0, r.output
    assert "Dev: accuracy" in r.output and "Test: accuracy" in r.output
    assert (out / "model.safetensors").is_file()
    r = run("eval", "--model", out, "--data", tiny_sentiment_dir, "--split", "dev")
    assert r.exit_code == 0, r.output
    assert "macro-F1" in r.output and "positive" in r.output
    saved = json.loads((out / "eval-dev.json").read_text())
    assert saved["n"] == 20 and len(saved["confusion_matrix"]["matrix"]) == 2


def test_bad_inputs_give_clear_messages(tiny_bert_dir, tiny_sentiment_dir, tmp_path, monkeypatch):
    assert_clean_error(run("finetune", "--model", tiny_bert_dir, "--data", tmp_path / "nope.csv",
                           "--out", tmp_path / "a"), "nope.csv")
    bad = tmp_path / "cols.csv"
    bad.write_text("review_body,stars\nhello,1\n")
    assert_clean_error(run("finetune", "--model", tiny_bert_dir, "--data", bad, "--out", tmp_path / "b"),
                       "review_body")
    assert_clean_error(run("finetune", "--model", "./missing-model", "--data", tiny_sentiment_dir,
                           "--out", tmp_path / "c"), "does not exist")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert_clean_error(run("finetune", "--model", "some-org/uncached-bert", "--data", tiny_sentiment_dir,
                           "--out", tmp_path / "d"), "not in the local Hugging Face cache", "minilm")
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "x").write_text("x")
    assert_clean_error(run("finetune", "--model", tiny_bert_dir, "--data", tiny_sentiment_dir,
                           "--out", taken), "--overwrite")
    r = run("finetune", "--model", tiny_bert_dir, "--data", tiny_sentiment_dir, "--out", tmp_path / "e",
            "--warmup-ratio", 2)
    assert_clean_error(r, "warmup_ratio")
    r = run("finetune", "--model", tiny_bert_dir, "--data", tiny_sentiment_dir, "--out", tmp_path / "f",
            "--lora", "--freeze-layers", 1)
    assert_clean_error(r, "lora")
    # eval of a model without a trained head
    assert_clean_error(run("eval", "--model", tiny_bert_dir, "--data", tiny_sentiment_dir),
                       "no trained classification head")
    for p in ("a", "b", "c", "d", "e", "f"):
        assert not (tmp_path / p).exists()


def test_unwritable_outputs_are_one_line_errors_before_any_work(tiny_bert_dir, tiny_sentiment_dir, read_only_dir,
                                                                 monkeypatch):
    import edgebert.evaluation

    r = run("finetune", "--model", tiny_bert_dir, "--data", tiny_sentiment_dir, "--out", read_only_dir / "m")
    assert_clean_error(r, f"Cannot write to '{read_only_dir}'", "Choose another --out")
    assert r.exit_code == 2 and r.output.count("\n") == 1
    monkeypatch.setattr(edgebert.evaluation, "score", lambda *a, **k: pytest.fail("scored before checking"))
    r = run("eval", "--model", tiny_bert_dir, "--data", tiny_sentiment_dir, "--out", read_only_dir / "e.json")
    assert_clean_error(r, f"Cannot write to '{read_only_dir}'")
    assert list(read_only_dir.iterdir()) == []


def test_eval_rejects_labels_the_model_lacks(tiny_bert_dir, tiny_sentiment_dir, tmp_path):
    out = tmp_path / "m"
    assert run("finetune", "--model", tiny_bert_dir, "--data", tiny_sentiment_dir, "--out", out,
               "--epochs", 1, "--quiet").exit_code == 0
    other = tmp_path / "other.csv"
    other.write_text("text,label\ni love it,positive\nmeh,neutral\n")
    assert_clean_error(run("eval", "--model", out, "--data", other, "--split", "train",
                           "--out", tmp_path / "e.json"), "neutral")


BAD_FILES = {
    # name: (train.csv content as bytes, dev.csv content or None, words the message must contain)
    "empty split": (b"text,label\n", None, ["train.csv", "no data rows"]),
    "missing text": (b"text,label\ni love it,pos\n,neg\nawful,neg\n", None, ["train.csv:3"]),
    "undecodable": (b"text,label\ni love it,pos\n\xff\xfe bad,neg\n", None, ["train.csv:3", "UTF-8"]),
    "unseen dev label": (b"text,label\ni love it,pos\nawful,neg\n", b"text,label\nmeh,neutral\n",
                         ["dev.csv:2", "neutral"]),
    "missing column": (b"body,label\ni love it,pos\n", None, ["train.csv", "body", "--text-column"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_data_files_through_cli(case, tiny_bert_dir, tmp_path):
    train, dev, needles = BAD_FILES[case]
    (tmp_path / "train.csv").write_bytes(train)
    args = ["finetune", "--model", tiny_bert_dir, "--data", tmp_path / "train.csv", "--out", tmp_path / "o"]
    if dev is not None:
        (tmp_path / "dev.csv").write_bytes(dev)
        args += ["--dev", tmp_path / "dev.csv"]
    r = run(*args)
    lowered = r.output.lower()
    assert_clean_error(r)
    for n in needles:
        assert n.lower() in lowered, f"{n!r} not in {r.output!r}"
    assert not (tmp_path / "o").exists()


def test_finetune_under_torchrun_two_processes(tiny_bert_dir, tiny_sentiment_dir, tmp_path):
    """The documented distributed launch: 2 CPU processes (gloo), one output written by rank 0."""
    out = tmp_path / "ddp"
    # `torchrun` is `python -m torch.distributed.run`; run it with this interpreter, since the first
    # torchrun on PATH may belong to another environment (CI's second virtual environment).
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "edgebert",
         "finetune", "--model", str(tiny_bert_dir),
         "--data", str(tiny_sentiment_dir), "--out", str(out), "--epochs", "1", "--batch-size", "8",
         "--learning-rate", "1e-3", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("Model written to") == 1
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["resolved"]["num_processes"] == 2


# -- a runtime-only install (pip install edgebert, no train extra) -------------------------------------

@pytest.mark.parametrize("args", [
    ["finetune", "--data", "intents", "--out", "{tmp}/ft"],
    ["compress", "--out", "{tmp}/c"],
    ["eval", "--model", "{tmp}/m", "--data", "intents"],
    ["bench", "{tmp}/m", "--data", "intents", "--out", "{tmp}/b"],
    ["report", "{tmp}/r.json", "--out", "{tmp}/rep"],
])
def test_training_commands_without_torch_say_what_to_install(tmp_path, args):
    """Where torch and transformers cannot be imported, a training command exits 2 with one line naming
    the train extra, writes nothing, and does not end in an ImportError traceback."""
    argv = [a.format(tmp=tmp_path) for a in args]
    proc = subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, *argv], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"edgebert {argv[0]} needs the training dependencies" in lines[0]
    assert "torch, transformers" in lines[0] and "pip install 'edgebert[train]'" in lines[0]
    assert list(tmp_path.iterdir()) == []


def test_training_command_help_works_without_torch():
    proc = subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, "finetune", "--help"], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0 and "--model" in proc.stdout, proc.stderr
