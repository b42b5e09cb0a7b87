"""Knowledge distillation: a pruned tiny student learns from the fine-tuned tiny teacher."""

from __future__ import annotations

import copy

import pytest
import torch

from edgebert import models
from edgebert.compress.distill import (
    _attention_probe,
    default_distill_learning_rates,
    default_layer_map,
    distill,
    epoch_seed,
    learning_rate_warning,
    learning_rates,
    selection_key,
)
from edgebert.compress.prune import drop_layers_, prune_heads_
from edgebert.data import load_dataset
from edgebert.errors import CompressionError, ConfigError

QUICK = dict(epochs=4, batch_size=8, learning_rate=1e-3, head_learning_rate=1e-2, patience=0, seed=0)


@pytest.fixture(scope="module")
def sentiment(tiny_sentiment_dir):
    return load_dataset(str(tiny_sentiment_dir))


@pytest.fixture(scope="module")
def teacher_dir(tiny_classifier_dir, sentiment, tmp_path_factory):
    """A tiny BERT teacher that has learnt the sentiment task (dev accuracy 1.0).

    Trained here with a plain constant-rate loop (a few seconds): the shared
    ``tiny_classifier_dir`` fixture stays at chance level (its logits are constant), which
    would make agreement with the teacher meaningless.
    """
    from edgebert.data import collate_batches
    from edgebert.evaluation import score

    loaded = models.load(str(tiny_classifier_dir))
    ds = sentiment.with_labels(loaded.label_names)
    model, tok = loaded.model, loaded.tokenizer
    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for epoch in range(6):  # to a confident teacher (train loss ~0.1), not just a correct one
        for inputs, labels, _rows in collate_batches(ds.split("train"), tok, batch_size=8, shuffle=True,
                                                     seed=epoch):
            model(**inputs, labels=labels).loss.backward()
            optimizer.step()
            optimizer.zero_grad()
    assert score(model, tok, ds.split("dev"), ds.label_names)["accuracy"] == 1.0
    out = tmp_path_factory.mktemp("distill-teacher")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _teacher_and_student(folder, sentiment, keep=(1,)):
    """The fine-tuned teacher, and a student: the teacher with layers dropped and a constant head."""
    teacher = models.load(str(folder))
    student = copy.deepcopy(teacher.model)
    drop_layers_(student, teacher.spec, list(keep))
    with torch.no_grad():  # a head that always says label 0: the student starts at chance agreement
        student.classifier.weight.zero_()
        student.classifier.bias.copy_(torch.tensor([1.0, -1.0]))
    return teacher, student, sentiment.with_labels(teacher.label_names)


def test_default_layer_map(tiny_classifier_dir):
    teacher = models.load(str(tiny_classifier_dir)).model
    student = copy.deepcopy(teacher)
    assert default_layer_map(student, teacher) == [0, 1]
    student.config.num_hidden_layers = 1  # as if one layer had gone without a record: uniform
    assert default_layer_map(student, teacher) == [1]
    teacher.config.num_hidden_layers, student.config.num_hidden_layers = 6, 3
    assert default_layer_map(student, teacher) == [1, 3, 5]
    student.config.edgebert_pruning = {"layers_kept": [1, 2, 4]}
    assert default_layer_map(student, teacher) == [1, 2, 4]


def test_distilled_student_learns_from_the_teacher(teacher_dir, sentiment):
    teacher, student, ds = _teacher_and_student(teacher_dir, sentiment, keep=[1])
    teacher_state = {k: v.clone() for k, v in teacher.model.state_dict().items()}
    res = distill(teacher.model, student, teacher.tokenizer, ds.split("train"), ds.split("dev"),
                  ds.label_names, **QUICK, temperature=2.0, alpha=0.7)
    hist = res["history"]
    assert len(hist) == 4 and hist[-1]["train_loss"] < hist[0]["train_loss"]
    assert res["layer_map"] == [1]  # the teacher layer the student kept
    assert res["student_before"]["agreement"] == 0.5  # constant head on a balanced dev set
    assert res["student"]["agreement"] > res["student_before"]["agreement"]
    assert res["student"]["agreement"] >= 0.9
    assert res["student"]["kl_to_teacher"] < res["student_before"]["kl_to_teacher"]
    assert res["teacher"]["accuracy"] == 1.0 and res["student"]["accuracy"] >= 0.9
    assert hist[0]["hidden_loss"] is None and hist[0]["attention_loss"] is None
    assert res["teacher_logits_cached"]  # logit-only losses: the teacher ran once, before training
    # the teacher is untouched and the student comes back in eval mode with its best state
    assert all(torch.equal(v, teacher.model.state_dict()[k]) for k, v in teacher_state.items())
    assert not student.training
    best = hist[res["best_epoch"] - 1]
    assert res["student"]["accuracy"] == best["dev_accuracy"]


def test_selection_key_orders_epochs_by_the_chosen_measure():
    # the SST-2 run's shape: one epoch is a sentence more accurate, another agrees more with the teacher
    epochs = {2: (0.8509, 0.922, 0.102), 3: (0.8498, 0.942, 0.069), 4: (0.8498, 0.942, 0.060)}
    best = {sel: max(epochs, key=lambda e: selection_key(sel, *epochs[e])) for sel in ("accuracy", "agreement", "kl")}
    assert best == {"accuracy": 2, "agreement": 4, "kl": 4}  # agreement ties between 3 and 4: lower KL wins
    # cpu-lr1e4 SST-2 seed 1: epoch 1 agrees on 3 more dev sentences, epoch 5 is closer to the teacher overall
    flat = {1: (0.8544, 0.9484, 0.0543), 5: (0.8555, 0.9450, 0.0532)}
    assert max(flat, key=lambda e: selection_key("agreement", *flat[e])) == 1
    assert max(flat, key=lambda e: selection_key("kl", *flat[e])) == 5
    assert selection_key("kl", 0.8, 0.9, 0.05) > selection_key("kl", 0.8, 0.8, 0.05)  # KL ties: agreement
    assert selection_key("accuracy", 0.8, 0.9, 0.1) > selection_key("accuracy", 0.8, 0.8, 0.0)
    with pytest.raises(ConfigError, match="select"):
        selection_key("loss", 0.8, 0.9, 0.1)


@pytest.mark.parametrize("select", ["accuracy", "agreement", "kl"])
def test_checkpoint_selection_follows_the_select_setting(teacher_dir, sentiment, select):
    teacher, student, ds = _teacher_and_student(teacher_dir, sentiment, keep=[1])
    res = distill(teacher.model, student, teacher.tokenizer, ds.split("train"), ds.split("dev"),
                  ds.label_names, **{**QUICK, "epochs": 3}, select=select)
    hist = res["history"]

    best = max(hist, key=lambda h: selection_key(select, h["dev_accuracy"], h["dev_agreement"], h["dev_kl"]))
    # (max keeps the first of equals, like the stage)
    assert res["best_epoch"] == best["epoch"]
    assert res["student"]["agreement"] == pytest.approx(best["dev_agreement"])
    assert res["config"]["select"] == select


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_hidden_and_attention_losses_run(arch, request, sentiment):
    folder = request.getfixturevalue({"bert": "tiny_classifier_dir", "albert": "tiny_albert_classifier_dir"}[arch])
    teacher, student, ds = _teacher_and_student(folder, sentiment, keep=[1])
    res = distill(teacher.model, student, teacher.tokenizer, ds.split("train"), ds.split("dev"), ds.label_names,
                  **{**QUICK, "epochs": 1}, hidden_weight=1.0, attention_weight=1.0)
    first = res["history"][0]
    assert first["hidden_loss"] > 0 and first["attention_loss"] > 0
    assert not res["teacher_logits_cached"]  # hidden states / attention need the teacher every step
    assert torch.isfinite(torch.tensor(first["train_loss"]))
    # ALBERT keeps no per-layer record (every use is the same weights): uniform map, last -> last
    assert res["layer_map"] == [1]


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_attention_of_pruned_heads_is_matched_to_the_heads_they_came_from(arch, request):
    """A head-pruned student compares each kept head with the teacher head it was cut from: where the
    inputs are the same (the first layer use), the student's maps equal the teacher's at those heads."""
    from edgebert.compress.distill import _check_models

    folder = request.getfixturevalue({"bert": "tiny_classifier_dir", "albert": "tiny_albert_classifier_dir"}[arch])
    teacher = models.load(str(folder))
    t_model = teacher.model.eval()
    student = copy.deepcopy(t_model)
    prune_heads_(student, teacher.spec, {0: [1, 3]})  # BERT: layer 0; ALBERT: the shared layer (every use)
    layer_map, head_map = _check_models(t_model, student, teacher.label_names, attention_weight=1.0)
    assert layer_map == [0, 1]
    assert head_map == ([[1, 3], None] if arch == "bert" else [[1, 3], [1, 3]])
    enc = teacher.tokenizer(["i love this movie so much", "bad"], padding=True, return_tensors="pt")
    mask = enc["attention_mask"]
    with torch.no_grad(), _attention_probe(t_model, teacher.spec) as (_c, t_probs), \
            _attention_probe(student, teacher.spec) as (_d, s_probs):
        t_model(**enc)
        student(**enc)
        assert s_probs(0, mask).shape[1] == 2
        assert torch.allclose(s_probs(0, mask), t_probs(0, mask)[:, [1, 3]], atol=1e-5)
        assert not torch.allclose(s_probs(0, mask), t_probs(0, mask)[:, [0, 1]], atol=1e-3)
    # a teacher that was itself pruned: heads are found by their original index, not their position
    pruned_teacher = copy.deepcopy(t_model)
    prune_heads_(pruned_teacher, teacher.spec, {0: [0, 1, 3]})
    narrower = copy.deepcopy(pruned_teacher)
    prune_heads_(narrower, teacher.spec, {0: [1, 2]})  # positions 1, 2 of [0, 1, 3]: original heads 1, 3
    assert _check_models(pruned_teacher, narrower, teacher.label_names, attention_weight=1.0)[1][0] == [1, 2]
    # and distillation with it runs, with a finite, positive attention loss
    ds = request.getfixturevalue("sentiment").with_labels(teacher.label_names)
    res = distill(t_model, student, teacher.tokenizer, ds.split("train"), ds.split("dev"), ds.label_names,
                  **{**QUICK, "epochs": 1}, attention_weight=1.0)
    assert res["head_map"] == head_map
    assert 0 < res["history"][0]["attention_loss"] < float("inf")


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_attention_probe_matches_eager_attention(arch, request):
    """The attention maps rebuilt from query/key equal what the eager kernel returns."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = request.getfixturevalue({"bert": "tiny_classifier_dir", "albert": "tiny_albert_classifier_dir"}[arch])
    model = AutoModelForSequenceClassification.from_pretrained(folder, attn_implementation="eager").eval()
    tok = AutoTokenizer.from_pretrained(folder)
    spec = models.get_spec(model)
    enc = tok(["i love this movie so much", "bad"], padding=True, return_tensors="pt")
    with torch.no_grad(), _attention_probe(model, spec) as (_calls, probs):
        out = model(**enc, output_attentions=True)
        for use in range(2):
            ours = probs(use, enc["attention_mask"]).exp()
            assert torch.allclose(ours, out.attentions[use], atol=1e-5)


def test_bad_setups_raise_clear_errors(tiny_classifier_dir, sentiment):
    from transformers import BertForSequenceClassification

    teacher, student, ds = _teacher_and_student(tiny_classifier_dir, sentiment, keep=[1])
    args = (teacher.tokenizer, ds.split("train"), ds.split("dev"), ds.label_names)
    narrow_cfg = copy.deepcopy(teacher.model.config)
    narrow_cfg.hidden_size, narrow_cfg.intermediate_size = 16, 32
    narrow = BertForSequenceClassification(narrow_cfg)
    with pytest.raises(CompressionError, match="equal hidden sizes.*32.*16"):
        distill(teacher.model, narrow, *args, **QUICK, hidden_weight=1.0)
    with pytest.raises(CompressionError, match="layer_map"):
        distill(teacher.model, student, *args, **QUICK, layer_map=[0, 1])
    with pytest.raises(CompressionError, match="layer_map"):
        distill(teacher.model, student, *args, **QUICK, layer_map=[2])
    with pytest.raises(CompressionError, match="layer_map"):
        distill(teacher.model, student, *args, **QUICK, layer_map=[-1])  # not the last layer, as [-1] would index
    with pytest.raises(ConfigError, match="select"):  # checked before any training, as the recipe's config is
        distill(teacher.model, student, *args, **QUICK, select="loss")
    pruned = copy.deepcopy(student)
    prune_heads_(pruned, teacher.spec, {0: [0, 1]})  # student layer 0 (teacher layer 1) keeps heads 0, 1
    unrecorded = copy.deepcopy(pruned)
    unrecorded.config.edgebert_pruning = {}  # fewer heads and nothing saying which ones
    with pytest.raises(CompressionError, match="same heads.*2 and teacher layer 1 has 4"):
        distill(teacher.model, unrecorded, *args, **QUICK, attention_weight=1.0)
    other_teacher = copy.deepcopy(teacher.model)
    prune_heads_(other_teacher, teacher.spec, {1: [2, 3]})  # a teacher without the student's heads
    with pytest.raises(CompressionError, match=r"original heads \[0, 1\] that teacher layer 1 does not have"):
        distill(other_teacher, pruned, *args, **QUICK, attention_weight=1.0)
    with pytest.raises(CompressionError, match="3 labels"):
        distill(teacher.model, student, teacher.tokenizer, ds.split("train"), ds.split("dev"),
                ["a", "b", "c"], **QUICK)
    with pytest.raises(CompressionError, match="dev"):
        distill(teacher.model, student, teacher.tokenizer, ds.split("train"), ds.split("dev").select([]),
                ds.label_names, **QUICK)


def test_augmented_transfer_set(teacher_dir, sentiment):
    from edgebert.compress.distill import _transfer_set

    teacher, student, ds = _teacher_and_student(teacher_dir, sentiment, keep=[1])
    train = ds.split("train")
    t1 = _transfer_set(train, "[MASK]", 1, augment=2, seed=0)
    assert len(t1) == 3 * len(train) and t1.labels[:len(train)] == train.labels
    assert t1.labels[len(train):] == [-1] * (2 * len(train))  # copies: teacher outputs only
    assert t1.texts == _transfer_set(train, "[MASK]", 1, augment=2, seed=0).texts  # seeded
    assert t1.texts != _transfer_set(train, "[MASK]", 2, augment=2, seed=0).texts  # fresh copies every epoch
    assert t1.texts != _transfer_set(train, "[MASK]", 1, augment=2, seed=1).texts
    assert _transfer_set(train, "[MASK]", 1, augment=0, seed=0) is train
    res = distill(teacher.model, student, teacher.tokenizer, train, ds.split("dev"), ds.label_names,
                  **{**QUICK, "epochs": 2}, augment=2)
    assert res["transfer_rows_per_epoch"] == 3 * len(train) and res["teacher_logits_cached"]
    assert res["optimizer_steps"] == 2 * -(-3 * len(train) // QUICK["batch_size"])
    assert res["student"]["agreement"] > res["student_before"]["agreement"]
    assert all(h["hard_loss"] >= 0 and h["soft_loss"] > 0 for h in res["history"])


def test_epoch_seeds_never_repeat_across_run_seeds():
    """Each (seed, epoch) draws its own row order: run seeds are independent draws, not shifted epochs."""
    seen = {epoch_seed(seed, epoch) for seed in range(-3, 4) for epoch in (1, 2, 3, 999, 1000)}
    assert len(seen) == 7 * 5 and min(seen) > 0  # random.Random(-n) draws as random.Random(n) does
    assert [epoch_seed(0, e) for e in (1, 2, 3)] == [1, 2, 3]  # seed 0 unchanged: published runs reproduce
    assert epoch_seed(1, 1) != epoch_seed(0, 2)


def test_learning_rate_warning_names_rates_above_the_familys_fine_tuning_rate():
    from transformers import AlbertConfig, BertConfig

    minilm = BertConfig(hidden_size=384, num_attention_heads=12, intermediate_size=1536)
    base, albert = BertConfig(), AlbertConfig()
    # the cpu recipe's 1e-4: a third of MiniLM's fine-tuning rate, above base BERT's and ALBERT's 3e-5
    assert learning_rate_warning(minilm, 1e-4) is None
    assert learning_rate_warning(minilm, None) is None and learning_rate_warning(albert, None) is None
    assert "base-size BERT models (3e-05)" in learning_rate_warning(base, 1e-4)
    note = learning_rate_warning(albert, 1e-4)
    assert "learning_rate 0.0001" in note and "ALBERT models (3e-05)" in note and "--recipe" in note
    assert learning_rate_warning(albert, 3e-5) is None
    assert "compact BERT" in learning_rate_warning(minilm, 5e-4)
    # an ALBERT albertize made from MiniLM starts from averaged weights, at MiniLM's distillation rate
    made = AlbertConfig(edgebert_albertize={"source_model_type": "bert"})
    assert learning_rate_warning(made, 1e-4) is None


def test_distillation_learning_rates_default_to_a_third_of_the_familys_fine_tuning_rate():
    from transformers import AlbertConfig, BertConfig

    from edgebert.train import default_learning_rates

    minilm = BertConfig(hidden_size=384, num_attention_heads=12, intermediate_size=1536)
    base, albert = BertConfig(), AlbertConfig()
    assert default_distill_learning_rates(minilm) == (1e-4, 1e-4)  # measured: the cpu recipe's rates
    assert default_distill_learning_rates(base) == (1e-5, 1e-5) == default_distill_learning_rates(albert)
    for config in (minilm, base, albert):
        body, head = default_distill_learning_rates(config)
        assert body == head and body == pytest.approx(default_learning_rates(config)[0] / 3)
        assert learning_rate_warning(config, body) is None  # the defaults never warn

    assert learning_rates(minilm) == (1e-4, 1e-4) and learning_rates(albert) == (1e-5, 1e-5)
    # an explicit encoder rate: the head follows it (the head is trained already), the family does not count
    assert learning_rates(minilm, 2e-5) == (2e-5, 2e-5)
    assert learning_rates(albert, 1e-4, 1e-3) == (1e-4, 1e-3)


def test_library_distill_resolves_unset_rates_for_the_student(teacher_dir, sentiment):
    # distill() called directly (not through compress) fills the rates in from the student's family
    teacher, student, ds = _teacher_and_student(teacher_dir, sentiment, keep=[1])
    cfg = dict(epochs=1, batch_size=8, patience=0, seed=0)
    expected = default_distill_learning_rates(student.config)
    res = distill(teacher.model, student, teacher.tokenizer, ds.split("train"), ds.split("dev"),
                  ds.label_names, **cfg)
    assert (res["learning_rate"], res["head_learning_rate"]) == expected == (1e-4, 1e-4)
    res = distill(teacher.model, student, teacher.tokenizer, ds.split("train"), ds.split("dev"),
                  ds.label_names, **cfg, learning_rate=3e-5)
    assert (res["learning_rate"], res["head_learning_rate"]) == (3e-5, 3e-5)  # the head follows the encoder
