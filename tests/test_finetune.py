"""Fine-tuning: tiny BERT / ALBERT end to end, options, outputs; MiniLM on real data."""

from __future__ import annotations

import json

import pytest
import torch

from edgebert.errors import ConfigError, OutputExistsError
from edgebert.train import FinetuneConfig, default_learning_rates, finetune

QUICK = dict(epochs=6, batch_size=8, learning_rate=1e-3, patience=0, seed=0)


def _predict_plain(folder, texts):
    """Predictions through plain transformers, no edgebert code."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.inference_mode():
        enc = tok(texts, padding=True, return_tensors="pt")
        return model(**enc).logits


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_tiny_finetune_learns_saves_and_reloads(arch, request, tiny_sentiment_dir, tmp_path):
    model_dir = request.getfixturevalue(f"tiny_{arch}_dir")
    out = tmp_path / "out"
    res = finetune(str(model_dir), str(tiny_sentiment_dir), out=out, config=FinetuneConfig(**QUICK),
                   progress=False)
    hist = res.metrics["history"]
    assert hist[-1]["train_loss"] < hist[0]["train_loss"]
    for name in ("model.safetensors", "config.json", "labels.json", "metrics.json", "manifest.json",
                 "tokenizer.json"):
        assert (out / name).is_file(), name
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in out.iterdir())
    cfg = json.loads((out / "config.json").read_text())
    assert set(cfg["id2label"].values()) == {"negative", "positive"}
    man = json.loads((out / "manifest.json").read_text())
    assert man["seed"] == 0 and man["config"]["learning_rate"] == 1e-3
    assert all(len(f["sha256"]) == 64 for f in man["data"]["files"].values())
    assert man["versions"]["torch"] and man["model"]["architecture"] == arch

    # plain transformers reload gives the same predictions as edgebert's own evaluation
    from edgebert.evaluation import evaluate

    texts = ["i love this movie", "awful film and boring", "what a good film"]
    logits = _predict_plain(out, texts)
    ev = evaluate(str(out), str(tiny_sentiment_dir), split="test")
    assert ev["accuracy"] == pytest.approx(res.metrics["test"]["accuracy"])
    from edgebert import models

    again = models.load(str(out))
    with torch.inference_mode():
        enc = again.tokenizer(texts, padding=True, return_tensors="pt")
        assert torch.allclose(again.model.eval()(**enc).logits, logits, atol=1e-5)


def test_tiny_bert_learns_the_task(tiny_bert_dir, tiny_sentiment_dir, tmp_path):
    res = finetune(str(tiny_bert_dir), str(tiny_sentiment_dir), out=tmp_path / "o",
                   config=FinetuneConfig(**{**QUICK, "epochs": 10}), progress=False)
    assert res.metrics["test"]["accuracy"] >= 0.9


def test_lora_output_is_a_plain_model(tiny_bert_dir, tiny_sentiment_dir, tmp_path):
    pytest.importorskip("peft")
    out = tmp_path / "lora"
    res = finetune(str(tiny_bert_dir), str(tiny_sentiment_dir), out=out,
                   config=FinetuneConfig(**{**QUICK, "lora": True, "lora_r": 4}), progress=False)
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert not any("lora" in k for k in keys)
    assert res.manifest["resolved"]["trainable_parameters"] < sum(
        p.numel() for p in _plain_model(out).parameters())


def _plain_model(folder):
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(folder)


def test_freeze_layers_keeps_weights(tiny_bert_dir, tiny_sentiment_dir, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "frozen"
    finetune(str(tiny_bert_dir), str(tiny_sentiment_dir), out=out,
             config=FinetuneConfig(**{**QUICK, "epochs": 2, "freeze_layers": 1, "freeze_embeddings": True}),
             progress=False)
    before = load_file(str(tiny_bert_dir / "model.safetensors"))
    after = load_file(str(out / "model.safetensors"))

    def get(sd, suffix):
        return next(v for k, v in sd.items() if k.endswith(suffix))

    frozen = "encoder.layer.0.attention.self.query.weight"
    trained = "encoder.layer.1.attention.self.query.weight"
    assert torch.equal(get(before, frozen), get(after, frozen))
    assert torch.equal(get(before, "embeddings.word_embeddings.weight"),
                       get(after, "embeddings.word_embeddings.weight"))
    assert not torch.equal(get(before, trained), get(after, trained))


def test_albert_rejects_freeze_layers(tiny_albert_dir, tiny_sentiment_dir, tmp_path):
    with pytest.raises(ConfigError, match="ALBERT"):
        finetune(str(tiny_albert_dir), str(tiny_sentiment_dir), out=tmp_path / "x",
                 config=FinetuneConfig(freeze_layers=1), progress=False)
    assert not (tmp_path / "x").exists()


def test_existing_output_is_refused_and_failure_leaves_nothing(tiny_bert_dir, tiny_sentiment_dir,
                                                               tmp_path, monkeypatch):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "something.txt").write_text("another run")
    with pytest.raises(OutputExistsError, match="--overwrite"):
        finetune(str(tiny_bert_dir), str(tiny_sentiment_dir), out=out, progress=False)
    assert (out / "something.txt").read_text() == "another run"
    with pytest.raises(OutputExistsError, match="not an edgebert finetune output"):  # never deleted
        finetune(str(tiny_bert_dir), str(tiny_sentiment_dir), out=out, progress=False, overwrite=True)
    assert (out / "something.txt").read_text() == "another run"
    mine = tmp_path / "mine"  # a finetune output of edgebert's own is replaced with --overwrite
    finetune(str(tiny_bert_dir), str(tiny_sentiment_dir), out=mine, config=FinetuneConfig(**{**QUICK, "epochs": 1}),
             progress=False)
    (mine / "stale.txt").write_text("from before")
    finetune(str(tiny_bert_dir), str(tiny_sentiment_dir), out=mine, config=FinetuneConfig(**{**QUICK, "epochs": 1}),
             progress=False, overwrite=True)
    assert not (mine / "stale.txt").exists() and (mine / "manifest.json").is_file()

    # a crash during saving leaves neither a partial folder nor a staging folder behind
    import transformers

    def boom(self, *a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(transformers.PreTrainedModel, "save_pretrained", boom)
    target = tmp_path / "new"
    with pytest.raises(RuntimeError, match="disk full"):
        finetune(str(tiny_bert_dir), str(tiny_sentiment_dir), out=target,
                 config=FinetuneConfig(**{**QUICK, "epochs": 1}), progress=False)
    assert not target.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "taken"]


def test_default_learning_rates_per_family(tiny_bert_dir, tiny_albert_dir):
    from transformers import AutoConfig

    small_body, small_head = default_learning_rates(AutoConfig.from_pretrained(tiny_bert_dir))
    albert_body, _ = default_learning_rates(AutoConfig.from_pretrained(tiny_albert_dir))
    base = AutoConfig.from_pretrained(tiny_bert_dir)
    base.hidden_size = 768
    base_body, _ = default_learning_rates(base)
    assert small_body > base_body  # compact encoders need a larger rate
    assert small_head > small_body
    assert albert_body <= base_body


def test_config_rejects_bad_values():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        FinetuneConfig(learning_rate=-1)
    with pytest.raises(ValidationError):
        FinetuneConfig(epochs=0)
    with pytest.raises(ValidationError):
        FinetuneConfig(unknown_key=1)
    with pytest.raises(ValidationError):
        FinetuneConfig(lora=True, freeze_layers=1)
    cfg = FinetuneConfig(epochs=2, lora=True)
    assert FinetuneConfig.model_validate_json(cfg.model_dump_json()) == cfg


@pytest.mark.slow
def test_minilm_on_sst2_subset(shared_data, minilm_dir, tmp_path):
    """The embedded real MiniLM, 1500 real SST-2 sentences, one epoch: clearly above chance."""
    res = finetune("minilm", str(shared_data / "sst2"), out=tmp_path / "sst2",
                   config=FinetuneConfig(epochs=1, seed=0), max_rows=1500, progress=False)
    assert res.metrics["dev"]["n"] == 872
    assert res.metrics["dev"]["accuracy"] >= 0.80


@pytest.mark.slow
def test_minilm_on_banking77_subset(shared_data, minilm_dir, tmp_path):
    """2000 real BANKING77 rows, 77 intents: far above the majority class."""
    res = finetune("minilm", str(shared_data / "banking77"), out=tmp_path / "b77",
                   config=FinetuneConfig(epochs=2, seed=0), max_rows=2000, progress=False)
    test = res.metrics["test"]
    majority = max(c["support"] for c in test["per_class"].values()) / test["n"]
    assert test["n"] == 3080
    assert test["accuracy"] > max(0.5, 5 * majority)


def test_adamw_uses_the_fused_kernel_on_cpu_and_matches_the_default():
    """Training steps use torch's fused AdamW where the device has it; one step must equal the
    default implementation's (same algorithm, one kernel instead of a loop over tensors)."""
    import torch
    from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

    from edgebert.train.finetune import _adamw

    if "cpu" not in _get_fused_kernels_supported_devices():
        pytest.skip(f"torch {torch.__version__} has no fused AdamW on CPU (2.4 and later have)")
    torch.manual_seed(0)
    weights = [torch.randn(50, 8), torch.randn(8)]
    grads = [torch.randn_like(w) for w in weights]
    results = []
    for fused in (True, False):
        params = [torch.nn.Parameter(w.clone()) for w in weights]
        groups = [{"params": params[:1], "lr": 1e-2, "weight_decay": 0.01},
                  {"params": params[1:], "lr": 1e-1, "weight_decay": 0.0}]
        opt = _adamw(groups) if fused else torch.optim.AdamW(groups, foreach=False)
        for _ in range(3):
            for p, g in zip(params, grads):
                p.grad = g.clone()
            opt.step()
        results.append([p.detach() for p in params])
        if fused:
            assert opt.defaults["fused"] is True
            assert not _adamw(groups, "some-accelerator").defaults.get("fused")  # no kernel listed for it
    assert not torch.equal(results[0][0], weights[0])  # the step moved the weights
    for a, b in zip(*results):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


# -- refused before any training: one label, a token cap above the model's, an unwritable --out -------

@pytest.fixture()
def no_training(monkeypatch):
    """Training must not start: accelerate's Accelerator (created just before the loop) fails the test."""
    import accelerate

    monkeypatch.setattr(accelerate, "Accelerator", lambda *a, **k: pytest.fail("training started"))


def test_a_train_file_with_one_label_is_refused(tiny_bert_dir, tmp_path, no_training):
    from conftest import POSITIVE

    from edgebert.errors import DataError

    train = tmp_path / "train.csv"
    train.write_text("text,label\n" + "".join(f"{t},positive\n" for t in POSITIVE * 2))
    with pytest.raises(DataError, match=rf"{train}: every one of the \d+ training rows has the label 'positive'"):
        finetune(str(tiny_bert_dir), str(train), out=tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_max_length_above_the_position_table_is_refused(tiny_bert_dir, tiny_sentiment_dir, tmp_path, no_training):
    with pytest.raises(ConfigError, match=r"max_length \(--max-length\) is 256, above the 128 tokens model '.*' takes "
                                          r"\(its position table: max_position_embeddings 128\). Use 128 or less"):
        finetune(str(tiny_bert_dir), str(tiny_sentiment_dir), out=tmp_path / "out",
                 config=FinetuneConfig(max_length=256), progress=False)
    assert not (tmp_path / "out").exists()


def test_an_unwritable_out_is_refused_before_anything_is_read(tiny_bert_dir, tiny_sentiment_dir, read_only_dir,
                                                              monkeypatch):
    import edgebert.data
    from edgebert.errors import OutputNotWritableError

    monkeypatch.setattr(edgebert.data, "load_dataset", lambda *a, **k: pytest.fail("data was read"))
    with pytest.raises(OutputNotWritableError, match=rf"Cannot write to '{read_only_dir}'.*Choose another --out"):
        finetune(str(tiny_bert_dir), str(tiny_sentiment_dir), out=read_only_dir / "runs" / "m", progress=False)


def test_a_full_disk_is_an_error_naming_the_folder(tiny_bert_dir, tiny_sentiment_dir, tmp_path, monkeypatch):
    import transformers.modeling_utils
    from safetensors import SafetensorError

    from edgebert.errors import DiskFullError

    def full(*args, **kwargs):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                              'message: "No space left on device" })')

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", full)
    out = tmp_path / "runs" / "m"
    with pytest.raises(DiskFullError, match=rf"while writing '{out}': it needs about \d+\.\d MiB, and .* free"):
        finetune(str(tiny_bert_dir), str(tiny_sentiment_dir), out=out, config=FinetuneConfig(**{**QUICK, "epochs": 1}),
                 progress=False)
    assert list((tmp_path / "runs").iterdir()) == []  # nothing half-written


def test_outputs_are_readable_by_others_under_umask_022(tiny_bert_dir, tiny_sentiment_dir, tmp_path):
    import os
    import stat

    old = os.umask(0o022)
    try:
        out = tmp_path / "m"
        finetune(str(tiny_bert_dir), str(tiny_sentiment_dir), out=out, config=FinetuneConfig(**{**QUICK, "epochs": 1}),
                 progress=False)
    finally:
        os.umask(old)
    modes = {p.relative_to(tmp_path): stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")]}
    assert modes[out.relative_to(tmp_path)] == 0o755 and (out / "manifest.json").is_file()
    assert {p: m for p, m in modes.items() if m != (0o755 if (tmp_path / p).is_dir() else 0o644)} == {}
