"""albertize: a BERT classifier turned into a real transformers ALBERT classifier (issue 21 part 1)."""

from __future__ import annotations

import pytest

from conftest import tiny_albert_config, tiny_bert_config

#: logits of the unshared, unfactorised ALBERT against its source BERT (float32 rounding only;
#: measured 4e-9 on the tiny model)
LOSSLESS_ATOL = 1e-4


def _bert(layers=4, labels=3, **overrides):
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    cfg = tiny_bert_config(150, num_hidden_layers=layers, num_labels=labels, hidden_act="gelu",
                           id2label={i: f"c{i}" for i in range(labels)},
                           label2id={f"c{i}": i for i in range(labels)}, **overrides)
    return BertForSequenceClassification(cfg).eval()


def _inputs():
    import torch

    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 150, (3, 12), generator=gen)
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}


def _logits(model, feed):
    import torch

    with torch.no_grad():
        return model(**feed).logits


@pytest.fixture(scope="module")
def bert():
    return _bert()


def test_unshared_full_rank_albert_reproduces_the_bert(bert):
    from transformers import AlbertForSequenceClassification

    from edgebert.compress.albertize import albertize

    albert = albertize(bert, embedding_size=None, num_hidden_groups=4)
    assert isinstance(albert, AlbertForSequenceClassification)
    feed = _inputs()
    diff = (_logits(albert, feed) - _logits(bert, feed)).abs().max().item()
    assert diff < LOSSLESS_ATOL, diff
    cfg = albert.config
    assert (cfg.embedding_size, cfg.num_hidden_groups, cfg.inner_group_num) == (32, 4, 1)
    assert cfg.hidden_act == "gelu"  # the source's, not ALBERT's default gelu_new
    assert cfg.id2label == bert.config.id2label and cfg.label2id == bert.config.label2id
    for key in ("vocab_size", "max_position_embeddings", "type_vocab_size", "layer_norm_eps", "pad_token_id",
                "num_attention_heads", "intermediate_size"):
        assert getattr(cfg, key) == getattr(bert.config, key), key


def test_factorised_embedding_is_exact_at_full_rank(bert):
    """ALBERT's map(LN_E(word + position + type)) equals BERT's LN_H(word + position + type) at E == H,
    for every token, position and type: the embedding block alone, not through the encoder."""
    import torch

    from edgebert.compress.albertize import factorize_embeddings

    emb = bert.bert.embeddings
    fact = factorize_embeddings(emb.word_embeddings.weight, emb.position_embeddings.weight,
                                emb.token_type_embeddings.weight, emb.LayerNorm.weight, emb.LayerNorm.bias, 32)
    eps = bert.config.layer_norm_eps
    with torch.no_grad():
        for pos, typ in ((0, 0), (7, 1), (127, 1)):
            bert_out = emb.LayerNorm(emb.word_embeddings.weight + emb.position_embeddings.weight[pos]
                                     + emb.token_type_embeddings.weight[typ])
            e = fact.word + fact.position[pos] + fact.token_type[typ]
            e = torch.nn.functional.layer_norm(e, (32,), fact.norm_weight, fact.norm_bias, eps)
            albert_out = e @ fact.mapping_weight.T + fact.mapping_bias
            assert (albert_out - bert_out).abs().max().item() < 1e-5
    assert fact.kept_energy == pytest.approx(1.0)
    # below full rank the same construction loses something
    low = factorize_embeddings(emb.word_embeddings.weight, emb.position_embeddings.weight,
                               emb.token_type_embeddings.weight, emb.LayerNorm.weight, emb.LayerNorm.bias, 8)
    assert low.word.shape == (150, 8) and low.mapping_weight.shape == (32, 8)
    assert 0 < low.kept_energy < 1


def _expected_albert_params(cfg, E, G) -> int:
    V, P, T, H, inter, C = cfg.vocab_size, cfg.max_position_embeddings, cfg.type_vocab_size, cfg.hidden_size, \
        cfg.intermediate_size, cfg.num_labels
    embeddings = (V + P + T) * E + 2 * E + E * H + H
    layer = 4 * (H * H + H) + 2 * H + (H * inter + inter) + (inter * H + H) + 2 * H
    return embeddings + G * layer + (H * H + H) + (H * C + C)


def test_small_shared_albert_has_albert_size_and_loads_with_auto_classes(bert, tiny_tokenizer, tmp_path):
    import json

    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from edgebert.compress.albertize import RECORD_KEY, albertize, save_albertized

    albert = albertize(bert, embedding_size=8, num_hidden_groups=1)
    n_bert = sum(p.numel() for p in bert.parameters())
    n_albert = sum(p.numel() for p in albert.parameters())
    assert n_albert == _expected_albert_params(bert.config, 8, 1)
    assert n_albert < 0.35 * n_bert, (n_albert, n_bert)

    out = save_albertized(albert, tiny_tokenizer, tmp_path / "albert")
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "albert"
    assert config[RECORD_KEY]["tokenizer"].startswith("the source model's WordPiece")
    loaded = AutoModelForSequenceClassification.from_pretrained(out).eval()
    assert type(loaded).__name__ == "AlbertForSequenceClassification"
    feed = _inputs()
    assert (_logits(loaded, feed) - _logits(albert, feed)).abs().max().item() == 0
    tok = AutoTokenizer.from_pretrained(out)  # the source's WordPiece, not an ALBERT SentencePiece
    text = "where is my card"
    assert tok(text)["input_ids"] == tiny_tokenizer(text)["input_ids"]


def test_groups_share_weights_as_transformers_runs_them(bert):
    """G groups replace consecutive runs of L/G layers; "average" starts a group at their mean,
    "best" at one of them."""
    import torch

    from edgebert.compress.albertize import albertize, layer_groups

    assert layer_groups(6, 3) == [[0, 1], [2, 3], [4, 5]]
    assert layer_groups(4, 1) == [[0, 1, 2, 3]]
    q = [layer.attention.self.query.weight for layer in bert.bert.encoder.layer]
    avg = albertize(bert, embedding_size=16, num_hidden_groups=2, init="average")
    got = [g.albert_layers[0].attention.query.weight for g in avg.albert.encoder.albert_layer_groups]
    assert torch.allclose(got[0], (q[0] + q[1]) / 2) and torch.allclose(got[1], (q[2] + q[3]) / 2)
    best = albertize(bert, embedding_size=16, num_hidden_groups=2, init="best")
    chosen = best.config.edgebert_albertize["layers_chosen"]
    assert chosen[0] in (0, 1) and chosen[1] in (2, 3)
    got = [g.albert_layers[0].attention.query.weight for g in best.albert.encoder.albert_layer_groups]
    assert torch.equal(got[0], q[chosen[0]]) and torch.equal(got[1], q[chosen[1]])


def test_best_picks_the_layer_that_reproduces_its_group(bert):
    """Layers 0 and 1 form a group: layer 0 passes its (normalised) input through unchanged, layer 1
    maps every input to about the same vector (a huge output bias). The pair's output is layer 1's,
    which layer 1 run twice reproduces and layer 0 run twice does not; "best" must not take the
    first layer of the group by default."""
    import copy

    import torch

    from edgebert.compress.albertize import albertize

    model = copy.deepcopy(bert)
    with torch.no_grad():
        for i, layer in enumerate(model.bert.encoder.layer[:2]):
            layer.attention.output.dense.weight.zero_()
            layer.attention.output.dense.bias.zero_()
            layer.output.dense.weight.zero_()
            layer.output.dense.bias.copy_(torch.zeros(32) if i == 0 else 100 * torch.randn(32))
            for norm in (layer.attention.output.LayerNorm, layer.output.LayerNorm):
                norm.weight.fill_(1.0)
                norm.bias.zero_()
    albert = albertize(model, embedding_size=None, num_hidden_groups=2, init="best")
    assert albert.config.edgebert_albertize["layers_chosen"][0] == 1


@pytest.mark.parametrize("kwargs, needle", [
    ({"embedding_size": 64, "num_hidden_groups": 1}, "embedding_size must be a whole number from 2 to the hidden size 32"),
    ({"embedding_size": 1, "num_hidden_groups": 1}, "embedding_size must be"),
    ({"embedding_size": 16, "num_hidden_groups": 3}, "num_hidden_groups must divide the model's 4 layers; got 3. Valid: 1, 2, 4"),
    ({"embedding_size": 16, "num_hidden_groups": 0}, "num_hidden_groups must divide"),
    ({"embedding_size": 16, "num_hidden_groups": 1, "init": "first"}, "init must be 'average' or 'best'"),
])
def test_bad_arguments_raise_one_line_config_errors(bert, kwargs, needle):
    from edgebert.compress.albertize import albertize
    from edgebert.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        albertize(bert, **kwargs)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_non_bert_sources_are_refused():
    import torch
    from transformers import AlbertForSequenceClassification, BertModel

    from edgebert.compress.albertize import albertize
    from edgebert.errors import ConfigError

    torch.manual_seed(0)
    for model in (AlbertForSequenceClassification(tiny_albert_config(150)), BertModel(tiny_bert_config(150))):
        with pytest.raises(ConfigError, match="albertize converts a BERT-family sequence classifier") as info:
            albertize(model, embedding_size=16, num_hidden_groups=1)
        assert "\n" not in str(info.value)


def test_head_pruned_bert_is_refused(bert):
    import copy

    from edgebert.compress.albertize import albertize
    from edgebert.errors import ConfigError

    model = copy.deepcopy(bert)
    model.config.edgebert_pruning = {"heads": [[0, 1], [0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]]}
    with pytest.raises(ConfigError, match="albertize the unpruned model"):
        albertize(model, embedding_size=16, num_hidden_groups=1)


def test_grouped_albert_layers_and_uses(bert):
    """An ALBERT with 2 groups of the 4 layers: two distinct layer modules, each layer use mapped to its
    group exactly as transformers runs it, and head pruning applies per group."""
    from edgebert.compress.albertize import albertize
    from edgebert.compress.prune import prune_heads_
    from edgebert.models.specs import get_spec

    albert = albertize(bert, embedding_size=16, num_hidden_groups=2)
    spec = get_spec(albert)
    groups = albert.albert.encoder.albert_layer_groups
    assert spec.layer_modules(albert) == [g.albert_layers[0] for g in groups]
    assert [spec.layer_of_use(albert, u) for u in range(4)] == [0, 0, 1, 1]
    prune_heads_(albert, spec, {1: [0]})
    assert spec.layer_part(albert, "attn_module", 1).num_attention_heads == 1
    assert spec.layer_part(albert, "attn_module", 0).num_attention_heads == bert.config.num_attention_heads
    feed = _inputs()
    assert _logits(albert, feed).shape == (3, 3)
