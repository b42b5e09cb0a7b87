"""Structured pruning: importance, physical removal (exactness, parameter counts), save/reload."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from edgebert import models
from edgebert.compress import prune as prune_mod
from edgebert.compress.prune import (
    count_parameters,
    drop_layers_,
    ffn_importance,
    gradient_importance,
    head_importance,
    layer_importance,
    prune,
    prune_ffn_,
    prune_heads_,
    sample_batches,
)
from edgebert.data import load_dataset
from edgebert.errors import CompressionError

TEXTS = ["i love this movie", "awful film and boring", "what a good film", "no this is bad at all",
         "great"]
HIDDEN, HEADS, HEAD_SIZE, FFN = 32, 4, 8, 64  # the tiny fixtures (tests/conftest.py)


@pytest.fixture
def classifier(request):
    """A fresh copy of a fine-tuned tiny classifier; ``request.param`` is ``bert`` or ``albert``."""
    name = {"bert": "tiny_classifier_dir", "albert": "tiny_albert_classifier_dir"}[request.param]
    return models.load(str(request.getfixturevalue(name)))


@pytest.fixture(scope="module")
def sentiment(tiny_sentiment_dir):
    return load_dataset(str(tiny_sentiment_dir))


def _data(loaded, sentiment):
    return sentiment.with_labels(loaded.label_names)


def _batches(loaded, sentiment, n=32):
    return sample_batches(_data(loaded, sentiment).split("train"), loaded.tokenizer, samples=n,
                          batch_size=16, max_length=32)


def _logits(model, tokenizer, texts=TEXTS):
    model.eval()
    with torch.inference_mode():
        enc = tokenizer(texts, padding=True, return_tensors="pt")
        return model(**enc).logits


def _zero_head_(loaded, layer, head):
    """Zero a head's value projection: its context is 0, so removing it changes nothing."""
    value = loaded.spec.layer_part(loaded.model, "value", layer)
    rows = slice(head * HEAD_SIZE, (head + 1) * HEAD_SIZE)
    with torch.no_grad():
        value.weight[rows] = 0
        value.bias[rows] = 0


def _zero_neurons_(loaded, layer, neurons):
    """Zero FFN neurons' input weights: gelu(0) = 0, so removing them changes nothing."""
    ffn_in = loaded.spec.layer_part(loaded.model, "ffn_in", layer)
    with torch.no_grad():
        ffn_in.weight[neurons] = 0
        ffn_in.bias[neurons] = 0


def _layers(loaded):
    return len(loaded.spec.layer_modules(loaded.model))



# -- importance ------------------------------------------------------------------------------


@pytest.mark.parametrize("classifier", ["bert", "albert"], indirect=True)
def test_importance_shapes(classifier, sentiment):
    batches = _batches(classifier, sentiment)
    distinct = 1 if classifier.spec.shared_layers else 2
    heads = head_importance(classifier.model, classifier.spec, batches)
    assert heads.shape == (distinct, HEADS)
    assert torch.isfinite(heads).all() and (heads > 0).all()
    assert torch.allclose(heads.norm(dim=1), torch.ones(distinct), atol=1e-5)  # L2 per layer
    ffn = ffn_importance(classifier.model, classifier.spec, batches)
    assert len(ffn) == distinct and all(s.shape == (FFN,) and (s >= 0).all() for s in ffn)
    layers = layer_importance(classifier.model, classifier.spec, batches)
    assert layers.shape == (2,) and torch.isfinite(layers).all()
    # measuring leaves the model as it was: weights trainable, mode unchanged
    assert all(p.requires_grad for p in classifier.model.parameters())
    assert not classifier.model.training


def test_albert_importance_sums_over_uses(tiny_albert_classifier_dir, sentiment):
    """One shared layer run twice: the gate's gradient sums both uses (more uses, other scores)."""
    loaded = models.load(str(tiny_albert_classifier_dir))
    batches = _batches(loaded, sentiment)
    spec = loaded.spec
    calls = []
    attn_out = spec.layer_part(loaded.model, "attn_out", 0)
    handle = attn_out.register_forward_pre_hook(lambda m, a: calls.append(1))
    try:
        head_importance(loaded.model, spec, batches)
    finally:
        handle.remove()
    assert len(calls) == 2 * len(batches)  # the gate hook sat on every use
    # ALBERT layer importance: skipping either use leaves the same model (the shared layer once)
    layers = layer_importance(loaded.model, spec, batches)
    assert layers[0] == pytest.approx(float(layers[1]), abs=1e-6)


@pytest.mark.parametrize("classifier", ["bert", "albert"], indirect=True)
def test_zeroed_head_has_no_importance_and_pruning_it_is_exact(classifier, sentiment):
    distinct = _layers(classifier)
    zeroed = {0: 2, 1: 1} if distinct == 2 else {0: 2}
    for layer, head in zeroed.items():
        _zero_head_(classifier, layer, head)
    model, tok = classifier.model, classifier.tokenizer
    scores = head_importance(model, classifier.spec, _batches(classifier, sentiment))
    for layer, head in zeroed.items():
        assert scores[layer, head] == 0
        assert scores[layer].argmin() == head
    reference, before = _logits(model, tok), count_parameters(model)

    report = prune(model, tok, classifier.spec, _data(classifier, sentiment).split("train"),
                   heads=0.25, samples=32, batch_size=16, max_length=32)
    for layer, head in zeroed.items():
        assert report["heads_kept"][str(layer)] == [h for h in range(HEADS) if h != head]
        attn = classifier.spec.layer_part(model, "attn_module", layer)
        assert attn.num_attention_heads == 3 and attn.all_head_size == 3 * HEAD_SIZE
        assert classifier.spec.layer_part(model, "query", layer).weight.shape == (3 * HEAD_SIZE, HIDDEN)
        assert classifier.spec.layer_part(model, "attn_out", layer).weight.shape == (HIDDEN, 3 * HEAD_SIZE)
    # per head: q, k, v rows (+ their biases) and the output projection's columns
    expected = len(zeroed) * HEAD_SIZE * (4 * HIDDEN + 3)
    assert before - count_parameters(model) == expected
    assert report["parameters_before"] - report["parameters_after"] == expected
    assert torch.allclose(_logits(model, tok), reference, atol=1e-5)
    assert model.config.edgebert_pruning["heads"] == {str(k): v for k, v in report["heads_kept"].items()}


@pytest.mark.parametrize("classifier", ["bert", "albert"], indirect=True)
def test_zeroed_neurons_are_pruned_first_and_exactly(classifier, sentiment):
    distinct = _layers(classifier)
    zeroed = {layer: list(range(layer, FFN, 4)) for layer in range(distinct)}  # 16 per layer
    for layer, neurons in zeroed.items():
        _zero_neurons_(classifier, layer, neurons)
    model, tok = classifier.model, classifier.tokenizer
    scores = ffn_importance(model, classifier.spec, _batches(classifier, sentiment))
    for layer, neurons in zeroed.items():
        assert (scores[layer][neurons] == 0).all()
        assert (torch.as_tensor([n for n in range(FFN) if n not in neurons]).numel()
                == (scores[layer] > 0).sum())
    reference, before = _logits(model, tok), count_parameters(model)
    report = prune(model, tok, classifier.spec, _data(classifier, sentiment).split("train"),
                   ffn=0.25, samples=32, batch_size=16, max_length=32)
    assert report["neurons_kept"] == model.config.intermediate_size == 48
    for layer in range(distinct):
        assert classifier.spec.layer_part(model, "ffn_in", layer).weight.shape == (48, HIDDEN)
        assert classifier.spec.layer_part(model, "ffn_out", layer).weight.shape == (HIDDEN, 48)
    # per neuron: a row (+ bias) of ffn_in and a column of ffn_out
    assert before - count_parameters(model) == distinct * 16 * (2 * HIDDEN + 1)
    assert torch.allclose(_logits(model, tok), reference, atol=1e-5)


def test_layer_importance_is_the_loss_increase_of_dropping_the_layer(tiny_classifier_dir, sentiment):
    loaded = models.load(str(tiny_classifier_dir))
    batches = _batches(loaded, sentiment)
    scores = layer_importance(loaded.model, loaded.spec, batches)
    base = prune_mod._mean_loss(loaded.model, batches)
    for i in range(2):
        reduced = copy.deepcopy(loaded.model)
        before = count_parameters(reduced)
        layer_params = sum(p.numel() for p in loaded.spec.layer_modules(reduced)[i].parameters())
        drop_layers_(reduced, loaded.spec, [1 - i])
        assert before - count_parameters(reduced) == layer_params
        assert reduced.config.num_hidden_layers == 1
        assert reduced.config.edgebert_pruning["layers_kept"] == [1 - i]
        assert float(scores[i]) == pytest.approx(prune_mod._mean_loss(reduced, batches) - base, abs=1e-5)


# -- choosing ---------------------------------------------------------------------------------


def test_scope_global_vs_per_layer(tiny_classifier_dir, sentiment):
    """Layer 1 has two dead heads: global ranking removes both; per-layer removes one per layer."""
    results = {}
    for scope in ("global", "per-layer"):
        loaded = models.load(str(tiny_classifier_dir))
        _zero_head_(loaded, 1, 0)
        _zero_head_(loaded, 1, 3)
        report = prune(loaded.model, loaded.tokenizer, loaded.spec, _data(loaded, sentiment).split("train"),
                       heads=0.25, scope=scope, samples=32, batch_size=16, max_length=32)
        results[scope] = report
        assert report["importance"]["heads"][1][0] == 0 and report["importance"]["heads"][1][3] == 0
    assert results["global"]["heads_per_layer"] == [4, 2]
    assert results["global"]["heads_kept"]["1"] == [1, 2]
    assert results["per-layer"]["heads_per_layer"] == [3, 3]
    assert results["per-layer"]["heads_kept"]["1"] == [1, 2, 3]  # ties: the lower index goes first


def test_global_scope_keeps_one_head_per_layer(tiny_classifier_dir, sentiment, monkeypatch):
    loaded = models.load(str(tiny_classifier_dir))
    scores = torch.tensor([[0.5, 0.6, 0.7, 0.8], [0.01, 0.02, 0.03, 0.04]])
    monkeypatch.setattr(prune_mod, "gradient_importance", lambda *a, **k: (scores, None))
    report = prune(loaded.model, loaded.tokenizer, loaded.spec, _data(loaded, sentiment).split("train"),
                   heads=0.5, scope="global", samples=16)
    assert report["heads_kept"] == {"0": [1, 2, 3], "1": [3]}
    assert _logits(loaded.model, loaded.tokenizer).shape == (len(TEXTS), 2)


@pytest.mark.parametrize("scores,kept", [([5.0, 0.01], [0]), ([0.01, 5.0], [1])])
def test_layers_int_drops_the_least_important(tiny_classifier_dir, sentiment, monkeypatch, scores, kept):
    loaded = models.load(str(tiny_classifier_dir))
    monkeypatch.setattr(prune_mod, "layer_importance", lambda *a, **k: torch.tensor(scores))
    layer_ids = [id(m) for m in loaded.spec.layer_modules(loaded.model)]
    report = prune(loaded.model, loaded.tokenizer, loaded.spec, _data(loaded, sentiment).split("train"),
                   layers=1, samples=16)
    assert report["layers_kept"] == kept and report["importance"]["layers"] == pytest.approx(scores)
    assert [id(m) for m in loaded.spec.layer_modules(loaded.model)] == [layer_ids[k] for k in kept]
    assert loaded.model.config.num_hidden_layers == 1
    assert loaded.model.config.edgebert_pruning == {"layers_kept": kept}


def test_layers_list_and_errors(tiny_classifier_dir, sentiment):
    loaded = models.load(str(tiny_classifier_dir))
    train = _data(loaded, sentiment).split("train")
    with pytest.raises(CompressionError, match="would drop every layer"):
        prune(loaded.model, loaded.tokenizer, loaded.spec, train, layers=2, samples=16)
    with pytest.raises(CompressionError, match="0..1"):
        prune(loaded.model, loaded.tokenizer, loaded.spec, train, layers=[5], samples=16)
    report = prune(loaded.model, loaded.tokenizer, loaded.spec, train, layers=[1], samples=16)
    assert report["layers_kept"] == [1] and report["importance"]["layers"] is None
    with pytest.raises(CompressionError, match="at least one"):
        prune_heads_(loaded.model, loaded.spec, {0: []})
    with pytest.raises(CompressionError, match="does not exist"):
        prune_heads_(loaded.model, loaded.spec, {3: [0]})
    with pytest.raises(CompressionError, match="0..3"):
        prune_heads_(loaded.model, loaded.spec, {0: [4]})
    with pytest.raises(CompressionError, match="different FFN sizes"):
        loaded2 = models.load(str(tiny_classifier_dir))
        prune_ffn_(loaded2.model, loaded2.spec, {0: list(range(10))})


# -- ALBERT stays ALBERT ----------------------------------------------------------------------


def test_albert_stays_a_shared_layer_albert(tiny_albert_classifier_dir, sentiment):
    from transformers import AlbertForSequenceClassification

    loaded = models.load(str(tiny_albert_classifier_dir))
    model = loaded.model
    projection = model.albert.encoder.embedding_hidden_mapping_in.weight.clone()
    embeddings = model.albert.embeddings.word_embeddings.weight.clone()
    before = count_parameters(model)
    report = prune(model, loaded.tokenizer, loaded.spec, _data(loaded, sentiment).split("train"),
                   heads=0.25, ffn=0.5, layers=1, samples=32, batch_size=16, max_length=32)
    assert isinstance(model, AlbertForSequenceClassification)
    assert len(loaded.spec.layer_modules(model)) == 1 and len(model.albert.encoder.albert_layer_groups) == 1
    assert model.config.num_hidden_layers == 1 and report["layers_kept"] == [0]
    assert report["importance"]["layers"] is None and "ALBERT" in report["notes"][0]
    assert report["heads_per_layer"] == [3] and report["neurons_kept"] == 32
    assert torch.equal(model.albert.encoder.embedding_hidden_mapping_in.weight, projection)
    assert torch.equal(model.albert.embeddings.word_embeddings.weight, embeddings)
    assert before - count_parameters(model) == HEAD_SIZE * (4 * HIDDEN + 3) + 32 * (2 * HIDDEN + 1)
    assert _logits(model, loaded.tokenizer).shape == (len(TEXTS), 2)
    assert json.loads(json.dumps(report))["heads_kept"] == {"0": report["heads_kept"]["0"]}


# -- save and reload --------------------------------------------------------------------------


@pytest.mark.parametrize("classifier", ["bert", "albert"], indirect=True)
def test_head_pruned_model_reloads_through_edgebert_load(classifier, sentiment, tmp_path):
    model, spec = classifier.model, classifier.spec
    if spec.shared_layers:
        prune_heads_(model, spec, {0: [1, 3]})
        prune_ffn_(model, spec, {0: list(range(0, FFN, 2))})
        drop_layers_(model, spec, [1])
        expected = {"heads": {"0": [1, 3]}}
    else:
        prune_heads_(model, spec, {0: [0, 3], 1: [1, 2, 3]})
        prune_heads_(model, spec, {1: [0, 2]})  # positions of the current heads: original 1, 3
        drop_layers_(model, spec, [1])
        expected = {"heads": {"0": [1, 3]}, "layers_kept": [1]}
    assert model.config.edgebert_pruning == expected
    reference = _logits(model, classifier.tokenizer)
    model.save_pretrained(tmp_path)
    classifier.tokenizer.save_pretrained(tmp_path)
    assert not any(p.suffix in (".bin", ".pt", ".pkl") for p in tmp_path.iterdir())

    again = models.load(str(tmp_path))
    assert type(again.model) is type(model) and not again.new_head and not again.model.training
    assert again.model.config.edgebert_pruning == expected
    assert spec.layer_part(again.model, "attn_module", 0).num_attention_heads == 2
    assert count_parameters(again.model) == count_parameters(model)
    assert torch.allclose(_logits(again.model, again.tokenizer), reference, atol=1e-6)
    # new labels: the pruned encoder is kept, the head is new
    relabelled = models.load(str(tmp_path), label_names=["a", "b", "c"])
    assert relabelled.new_head and relabelled.model.config.num_labels == 3
    assert torch.equal(spec.layer_part(relabelled.model, "query", 0).weight,
                       spec.layer_part(model, "query", 0).weight)


@pytest.mark.parametrize("classifier", ["bert", "albert"], indirect=True)
def test_ffn_and_layer_pruned_model_reloads_with_plain_transformers(classifier, sentiment, tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = classifier.model
    prune(model, classifier.tokenizer, classifier.spec, _data(classifier, sentiment).split("train"),
          ffn=0.5, layers=1, samples=32, batch_size=16, max_length=32)
    reference = _logits(model, classifier.tokenizer)
    model.save_pretrained(tmp_path)
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert plain.config.intermediate_size == 32 and plain.config.num_hidden_layers == 1
    assert count_parameters(plain) == count_parameters(model)
    assert torch.allclose(_logits(plain, classifier.tokenizer), reference, atol=1e-6)


def test_gradient_importance_accepts_collate_batches_triples(tiny_classifier_dir, sentiment):
    from edgebert.data import collate_batches

    loaded = models.load(str(tiny_classifier_dir))
    split = _data(loaded, sentiment).split("dev")
    triples = list(collate_batches(split, loaded.tokenizer, batch_size=10))
    heads, ffn = gradient_importance(loaded.model, loaded.spec, triples)
    assert heads.shape == (2, HEADS) and len(ffn) == 2
    with pytest.raises(CompressionError):
        head_importance(loaded.model, loaded.spec, [])


# -- the real model ---------------------------------------------------------------------------


@pytest.mark.slow
def test_minilm_prune_ffn_and_layers_by_importance(minilm_dir, shared_data, tmp_path):
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(0)
    loaded = models.load("minilm", label_names=["0", "1"])
    ds = load_dataset(str(shared_data / "sst2"), max_rows=256, seed=0).with_labels(loaded.label_names)
    texts = ds.split("dev").texts[:16]
    before = count_parameters(loaded.model)
    report = prune(loaded.model, loaded.tokenizer, loaded.spec, ds.split("train"),
                   ffn=0.5, layers=2, samples=64, batch_size=32, max_length=64)
    model = loaded.model
    assert model.config.num_hidden_layers == 4 and model.config.intermediate_size == 768
    assert len(report["importance"]["layers"]) == 6 and len(report["layers_kept"]) == 4
    scores = report["importance"]["layers"]
    dropped = set(range(6)) - set(report["layers_kept"])
    assert max(scores[i] for i in dropped) <= min(scores[i] for i in report["layers_kept"])
    assert count_parameters(model) < 0.75 * before
    reference = _logits(model, loaded.tokenizer, texts)
    assert torch.isfinite(reference).all()
    model.save_pretrained(tmp_path)
    loaded.tokenizer.save_pretrained(tmp_path)
    again = models.load(str(tmp_path))
    assert torch.allclose(_logits(again.model, again.tokenizer, texts), reference, atol=1e-5)
    plain = AutoModelForSequenceClassification.from_pretrained(tmp_path)
    assert torch.allclose(_logits(plain, again.tokenizer, texts), reference, atol=1e-5)
