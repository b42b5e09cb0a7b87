"""Albertize: turn a fine-tuned BERT-family classifier into a real transformers ALBERT classifier.

The result is an ``AlbertForSequenceClassification`` (``model_type: albert``) that plain
``AutoModelForSequenceClassification.from_pretrained`` loads. Two of ALBERT's ideas are applied
(Lan et al. 2020); distillation from the source model (``edgebert.compress.distill``) then recovers
what they cost:

**Factorised embedding** (``embedding_size`` E <= hidden H). BERT's embedding block is
``LN_H(word + position + type)``; ALBERT's is ``map(LN_E(word' + position' + type'))`` with three
E-wide tables, a LayerNorm over E and a linear E -> H map. LayerNorm's mean subtraction is the
linear projection ``C = I - 11^T / H``, so BERT's output is ``gamma * sqrt(H) * Cz / |Cz| + beta``
(eps aside) for the sum ``z`` of the three rows. Let ``U`` (H x (E-1)) be an orthonormal basis of
a subspace of the centred space, and ``Q`` ((E-1) x E) an isometry into the zero-sum vectors of
R^E. The ALBERT tables are the coordinates ``c = Q^T U^T C row`` (linear, so the three tables
add up as in BERT); c sums to zero, so ALBERT's LN_E subtracts nothing, and ``|c| = |Cz|`` where
``Cz`` lies in the subspace. With LN_E's own gamma 1 and beta 0, the map ``W = sqrt(H/E)
diag(gamma) U Q`` and bias ``beta`` give back BERT's output exactly for every ``z`` whose centred
part lies in the subspace; the only other difference is eps, which ALBERT adds to a variance
H/E times larger (below 1e-9 relative for BERT's eps of 1e-12).

* E == H: the subspace is the whole centred space (H - 1 dimensions), so the conversion is exact.
* E < H: ``U`` is the top E - 1 eigenvectors of the second moment of the centred sum
  ``C(word_t + position_p + type_s)`` over every token t, position p and type s, uniformly
  weighted (a truncated SVD of the three tables together, cross terms of their means included):
  the subspace that loses the least of the sum in mean square. The part of a sum outside it is
  lost, which changes both its direction and its norm before the LayerNorm. Token frequencies are
  not known here, so rare and frequent tokens count alike.

One of the E dimensions carries no information (the zero-sum constraint); it is the price of an
exact LayerNorm, and small next to E.

**Cross-layer sharing** (``num_hidden_groups`` G dividing the L layers; ``inner_group_num`` 1):
ALBERT runs group ``g`` for layers ``g*L/G ... (g+1)*L/G - 1``, and each group starts from the
BERT layers it replaces: ``init="average"`` takes the element-wise mean of their weights,
``init="best"`` the one of them that, run in place of all of them, best reproduces the group's
output: measured in the source model (the other layers untouched) as the mean squared error of the
hidden states leaving the group, over the non-padding tokens of ``probe`` (tokenized texts, e.g. a
few dev batches; without it 16 seeded random sequences of 32 token ids, a data-free stand-in:
comparing weights instead says nothing for a group of two layers, which are equally far apart).
G == L shares nothing and, at E == H, reproduces the source's logits (float rounding aside).

Measured before distillation on all-MiniLM-L6-v2 fine-tuned on SST-2 (200 dev sentences, agreement
with the source's labels): the factorised embedding alone (G = 6) keeps 0.93 / 0.87 / 0.84 at
E = 256 / 128 / 64; sharing costs far more: G = 3 keeps 0.73-0.79 with "average" and 0.58-0.77
with "best" (the same layers chosen with random or real-text probes), G = 2 and 1 answer one
label for everything (an earlier, 1,500-row fine-tune). "average" is this function's default. After
distillation on the full fine-tuned model (benchmarks/results/albertize-grid-sst2.md and -banking77.md),
at E = 128, G = 1: on SST-2 "best" started at 0.69 dev accuracy against 0.55 for "average" and ended
0.5 points ahead (a tie, one seed); on BANKING77 both started near chance and "best" ended 12 points
behind (0.70 against 0.81). The ``albert`` recipe uses "average". Either way the converted model is a
starting point for distillation, not a finished classifier.

The pooler and classifier are copied; the config carries the source's labels, activation (MiniLM's
``gelu``, not ALBERT's default ``gelu_new``), LayerNorm eps, position table, type vocabulary, vocab
size, dropout and special token ids. The saved folder keeps the source's tokenizer (WordPiece for
BERT), recorded in ``config.edgebert_albertize``, since the embedding rows follow its ids.
"""

from __future__ import annotations

import copy
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from edgebert.errors import ConfigError
from edgebert.models.specs import SPECS, get_path

if TYPE_CHECKING:
    import torch

__all__ = ["RECORD_KEY", "FactorizedEmbeddings", "albertize", "factorize_embeddings", "layer_groups",
           "save_albertized"]

#: config attribute (saved in config.json) that records how the ALBERT was made
RECORD_KEY = "edgebert_albertize"

#: the parts of one transformer layer, as named by the fields of ``edgebert.models.specs.ArchSpec``
_LAYER_PARTS = ("query", "key", "value", "attn_out", "attn_norm", "ffn_in", "ffn_out", "ffn_norm")


@dataclass
class FactorizedEmbeddings:
    """ALBERT's embedding block for a BERT one: E-wide tables, LayerNorm over E, and the E -> H map."""

    word: torch.Tensor  # V x E
    position: torch.Tensor  # P x E
    token_type: torch.Tensor  # T x E
    norm_weight: torch.Tensor  # E (ones)
    norm_bias: torch.Tensor  # E (zeros)
    mapping_weight: torch.Tensor  # H x E (nn.Linear layout)
    mapping_bias: torch.Tensor  # H
    #: fraction of the centred sum's mean square the E - 1 kept directions hold (1.0 at E == H)
    kept_energy: float


def _zero_sum_isometry(k: int, dtype) -> torch.Tensor:
    """A (k x (k+1)) matrix with orthonormal rows, each orthogonal to the all-ones vector of R^(k+1):
    it maps R^k isometrically onto the zero-sum vectors of R^(k+1)."""
    import torch

    basis = torch.eye(k + 1, dtype=dtype) - 1.0 / (k + 1)  # projection onto the zero-sum vectors
    q, _ = torch.linalg.qr(basis[:, :k])  # k independent columns of it, orthonormalised
    return q.T.contiguous()


def factorize_embeddings(word: torch.Tensor, position: torch.Tensor, token_type: torch.Tensor,
                         norm_weight: torch.Tensor, norm_bias: torch.Tensor, embedding_size: int,
                         ) -> FactorizedEmbeddings:
    """ALBERT's factorised embedding (E = ``embedding_size``) for BERT's ``LN(word + position + type)``.

    Exact at E == H; at E < H it keeps the E - 1 directions of the centred sum of the three tables
    with the most mean square (see the module docstring for the construction and why it keeps the
    LayerNorm exact within the kept subspace). Computed in float64; returned in ``word``'s dtype.
    """
    import torch

    hidden = word.shape[1]
    if not 2 <= embedding_size <= hidden:
        raise ConfigError(f"embedding_size must be between 2 and the hidden size {hidden}; got {embedding_size}.")
    dtype = word.dtype
    w, p, t = (x.detach().to(torch.float64) for x in (word, position, token_type))
    centre = lambda x: x - x.mean(dim=1, keepdim=True)  # noqa: E731  LayerNorm's mean subtraction
    w, p, t = centre(w), centre(p), centre(t)
    # Second moment of C(word_t + position_p + type_s) over uniform independent t, p, s.
    mean = w.mean(0) + p.mean(0) + t.mean(0)
    moment = sum(torch.cov(x.T, correction=0) if x.shape[0] > 1 else torch.zeros(hidden, hidden, dtype=x.dtype)
                 for x in (w, p, t)) + torch.outer(mean, mean)
    # Work inside the centred space (orthogonal to the ones vector, H - 1 dimensions), so that every
    # kept direction is one a centred row can have, whatever the rank of the tables.
    ones = torch.full((hidden, 1), 1.0 / math.sqrt(hidden), dtype=torch.float64)
    full, _ = torch.linalg.qr(torch.cat([ones, torch.eye(hidden, dtype=torch.float64)[:, : hidden - 1]], dim=1))
    centred = full[:, 1:]  # H x (H - 1)
    values, vectors = torch.linalg.eigh(centred.T @ moment @ centred)  # ascending
    k = embedding_size - 1  # one of E's dimensions goes to the zero-sum constraint
    basis = centred @ vectors[:, -k:]  # H x k: E == H keeps the whole centred space
    values = values.clamp(min=0)
    total = float(values.sum())
    kept = float(values[-k:].sum()) / total if total > 0 else 1.0
    iso = _zero_sum_isometry(k, torch.float64)  # k x E
    to_coords = basis @ iso  # H x E: a centred row -> its E coordinates
    gamma = norm_weight.detach().to(torch.float64)
    mapping = math.sqrt(hidden / embedding_size) * gamma[:, None] * to_coords  # H x E
    out = lambda x: x.to(dtype).contiguous()  # noqa: E731
    return FactorizedEmbeddings(
        word=out(w @ to_coords), position=out(p @ to_coords), token_type=out(t @ to_coords),
        norm_weight=torch.ones(embedding_size, dtype=dtype), norm_bias=torch.zeros(embedding_size, dtype=dtype),
        mapping_weight=out(mapping), mapping_bias=out(norm_bias.detach().to(torch.float64)),
        kept_energy=min(1.0, kept),
    )


def layer_groups(num_layers: int, num_hidden_groups: int) -> list[list[int]]:
    """The source layers each ALBERT group replaces (transformers' AlbertTransformer runs group
    ``int(i / (L / G))`` at layer ``i``)."""
    per = num_layers // num_hidden_groups
    return [list(range(g * per, (g + 1) * per)) for g in range(num_hidden_groups)]


def _check_source(model) -> None:
    cls = type(model).__name__
    config = getattr(model, "config", None)
    model_type = getattr(config, "model_type", None)
    if model_type != "bert" or not hasattr(model, "bert") or not hasattr(model, "classifier"):
        what = f"{cls} (model_type '{model_type}')" if model_type else cls
        raise ConfigError(f"albertize converts a BERT-family sequence classifier (BertForSequenceClassification, "
                          f"e.g. MiniLM); got {what}. Fine-tune a BERT model first: "
                          "edgebert finetune --model minilm --data sst2")
    if model.bert.pooler is None:
        raise ConfigError("albertize needs the source's pooler (ALBERT classifies its pooled [CLS]); "
                          "this BERT was built without one (add_pooling_layer=False).")
    kind = getattr(config, "position_embedding_type", "absolute")
    if kind != "absolute":
        raise ConfigError(f"albertize handles absolute position embeddings; this BERT uses '{kind}'.")
    if (getattr(config, "edgebert_pruning", None) or {}).get("heads"):
        raise ConfigError("albertize needs layers of one shape, and this model's attention heads were pruned "
                          "layer by layer: albertize the unpruned model, then prune the ALBERT.")


def _albert_config(source_config, embedding_size: int, num_hidden_groups: int):
    from transformers import AlbertConfig

    src = source_config
    dropout = getattr(src, "classifier_dropout", None)
    return AlbertConfig(
        vocab_size=src.vocab_size, embedding_size=embedding_size, hidden_size=src.hidden_size,
        num_hidden_layers=src.num_hidden_layers, num_hidden_groups=num_hidden_groups,
        num_attention_heads=src.num_attention_heads, intermediate_size=src.intermediate_size,
        inner_group_num=1, hidden_act=src.hidden_act,  # MiniLM: gelu; ALBERT's default gelu_new differs
        hidden_dropout_prob=src.hidden_dropout_prob, attention_probs_dropout_prob=src.attention_probs_dropout_prob,
        max_position_embeddings=src.max_position_embeddings, type_vocab_size=src.type_vocab_size,
        initializer_range=src.initializer_range, layer_norm_eps=src.layer_norm_eps,
        classifier_dropout_prob=src.hidden_dropout_prob if dropout is None else dropout,
        position_embedding_type="absolute",
        pad_token_id=src.pad_token_id, bos_token_id=getattr(src, "bos_token_id", None),
        eos_token_id=getattr(src, "eos_token_id", None),
        num_labels=src.num_labels, id2label=dict(src.id2label), label2id=dict(src.label2id),
        problem_type=getattr(src, "problem_type", None),
    )


def _layer_tensors(layer, spec) -> dict[str, torch.Tensor]:
    """One layer's parameters keyed ``part.weight`` / ``part.bias`` (``part`` an ArchSpec field)."""
    return {f"{part}.{name}": tensor.detach()
            for part in _LAYER_PARTS for name, tensor in get_path(layer, getattr(spec, part)).named_parameters()}


def _random_probe(config, rows: int = 16, length: int = 32) -> dict[str, torch.Tensor]:
    """Seeded random token ids (no padding, type 0): the data-free probe of :func:`_best_layers`."""
    import torch

    gen = torch.Generator().manual_seed(0)
    length = min(length, int(config.max_position_embeddings))
    ids = torch.randint(0, int(config.vocab_size), (rows, length), generator=gen)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def _best_layers(model, groups: list[list[int]], probe: dict[str, Any] | None) -> list[int]:
    """For each group, the source layer that, run in place of every layer of the group, gives the
    smallest mean squared error of the hidden states leaving the group (non-padding tokens)."""
    import torch

    spec = SPECS["bert"]
    feed = {k: torch.as_tensor(v) for k, v in (probe or _random_probe(model.config)).items()
            if k in ("input_ids", "attention_mask", "token_type_ids")}
    mask = feed.get("attention_mask", torch.ones_like(feed["input_ids"])).bool()
    trial = copy.deepcopy(model).eval()
    originals = [copy.deepcopy(layer.state_dict()) for layer in get_path(model, spec.layers)]
    trial_layers = get_path(trial, spec.layers)

    def leaving(m, g: int) -> torch.Tensor:
        with torch.no_grad():
            states = m.bert(**feed, output_hidden_states=True).hidden_states
        return states[groups[g][-1] + 1][mask].double()

    chosen = []
    for g, members in enumerate(groups):
        if len(members) == 1:
            chosen.append(members[0])
            continue
        target = leaving(model.eval(), g)
        errors = {}
        for j in members:
            for i in members:
                trial_layers[i].load_state_dict(originals[j])
            errors[j] = float((leaving(trial, g) - target).pow(2).mean())
        for i in members:
            trial_layers[i].load_state_dict(originals[i])
        chosen.append(min(members, key=lambda j: (errors[j], j)))
    return chosen


def _set_group(albert, group: int, tensors: dict[str, torch.Tensor]) -> None:
    import torch

    spec = SPECS["albert"]
    layer = albert.albert.encoder.albert_layer_groups[group].albert_layers[0]
    with torch.no_grad():
        for key, value in tensors.items():
            part, name = key.rsplit(".", 1)
            getattr(get_path(layer, getattr(spec, part)), name).copy_(value)


def _copy_(dst, src) -> None:
    import torch

    with torch.no_grad():
        for name, tensor in src.named_parameters():
            getattr(dst, name).copy_(tensor.detach())


def albertize(model, *, embedding_size: int | None, num_hidden_groups: int,
              init: Literal["average", "best"] = "average", probe: dict[str, Any] | None = None):
    """An ``AlbertForSequenceClassification`` made from the fine-tuned BERT classifier ``model``.

    ``embedding_size``: ALBERT's E (None: the hidden size H, no factorisation); 2 <= E <= H.
    ``num_hidden_groups``: distinct layer weight sets G (1: every layer shares one, as in ALBERT;
    the number of layers: no sharing); it must divide the number of layers. ``init``: how a group
    starts from the layers it replaces: their ``"average"``, or the ``"best"`` single one, measured
    on ``probe`` (a tokenizer's output: input_ids, attention_mask, token_type_ids; default: random
    token ids; see the module docstring).
    ``model`` is left unchanged; the result is in eval mode and records how it was made in
    ``config.edgebert_albertize``. Raises ConfigError for a non-BERT source or bad arguments.
    """
    import torch
    from transformers import AlbertForSequenceClassification

    _check_source(model)
    src = model.config
    hidden, num_layers = int(src.hidden_size), int(src.num_hidden_layers)
    if embedding_size is None:
        embedding_size = hidden
    if isinstance(embedding_size, bool) or not isinstance(embedding_size, int) or not 2 <= embedding_size <= hidden:
        raise ConfigError(f"embedding_size must be a whole number from 2 to the hidden size {hidden} "
                          f"(ALBERT factorises the embedding to E <= H); got {embedding_size!r}.")
    if (isinstance(num_hidden_groups, bool) or not isinstance(num_hidden_groups, int)
            or num_hidden_groups < 1 or num_layers % num_hidden_groups):
        valid = ", ".join(str(d) for d in range(1, num_layers + 1) if num_layers % d == 0)
        raise ConfigError(f"num_hidden_groups must divide the model's {num_layers} layers; got "
                          f"{num_hidden_groups!r}. Valid: {valid} (1 shares one layer's weights across all, "
                          f"{num_layers} shares nothing).")
    if init not in ("average", "best"):
        raise ConfigError(f"init must be 'average' or 'best'; got {init!r}.")

    bert_spec, albert_spec = SPECS["bert"], SPECS["albert"]
    config = _albert_config(src, embedding_size, num_hidden_groups)
    # the layer-pruning record (which teacher layers a student kept) still holds: distillation maps on it
    record = getattr(src, "edgebert_pruning", None)
    if record:
        setattr(config, "edgebert_pruning", copy.deepcopy(record))
    dtype = next(model.parameters()).dtype
    albert = AlbertForSequenceClassification(config).to(dtype)

    layers = [_layer_tensors(layer, bert_spec) for layer in get_path(model, bert_spec.layers)]
    own = _layer_tensors(albert.albert.encoder.albert_layer_groups[0].albert_layers[0], albert_spec)
    for i, layer in enumerate(layers):
        wrong = [k for k in own if layer[k].shape != own[k].shape]
        if wrong:
            raise ConfigError(f"albertize needs every layer shaped as the config says; layer {i}'s {wrong[0]} is "
                              f"{tuple(layer[wrong[0]].shape)}, not {tuple(own[wrong[0]].shape)} (pruned?). "
                              "Albertize the unpruned model, then prune the ALBERT.")

    emb = model.bert.embeddings
    fact = factorize_embeddings(emb.word_embeddings.weight, emb.position_embeddings.weight,
                                emb.token_type_embeddings.weight, emb.LayerNorm.weight, emb.LayerNorm.bias,
                                embedding_size)
    a_emb = albert.albert.embeddings
    with torch.no_grad():
        a_emb.word_embeddings.weight.copy_(fact.word)
        a_emb.position_embeddings.weight.copy_(fact.position)
        a_emb.token_type_embeddings.weight.copy_(fact.token_type)
        a_emb.LayerNorm.weight.copy_(fact.norm_weight)
        a_emb.LayerNorm.bias.copy_(fact.norm_bias)
        mapping = albert.albert.encoder.embedding_hidden_mapping_in
        mapping.weight.copy_(fact.mapping_weight)
        mapping.bias.copy_(fact.mapping_bias)
    # BERT's pooler is a module holding a dense layer (+ tanh); ALBERT's is the Linear itself (+ tanh)
    _copy_(get_path(albert, albert_spec.pooler), get_path(model, bert_spec.pooler).dense)
    _copy_(albert.classifier, model.classifier)

    groups = layer_groups(num_layers, num_hidden_groups)
    chosen = _best_layers(model, groups, probe) if init == "best" else None
    for g, members in enumerate(groups):
        if chosen is None:
            _set_group(albert, g, {k: torch.stack([layers[i][k] for i in members]).mean(0) for k in own})
        else:
            _set_group(albert, g, layers[chosen[g]])
    albert.eval()
    setattr(albert.config, RECORD_KEY, {
        "source_model_type": src.model_type,
        "embedding_size": embedding_size,
        "num_hidden_groups": num_hidden_groups,
        "init": init if init == "average" or probe is None else "best (measured on the given probe)",
        "groups": groups,
        "layers_chosen": chosen,
        "embedding_energy_kept": round(fact.kept_energy, 6),
    })
    return albert


def _tokenizer_kind(tokenizer) -> str:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    model = getattr(backend, "model", None)
    return type(model).__name__ if model is not None else type(tokenizer).__name__


def save_albertized(albert, tokenizer, out: str | os.PathLike) -> Path:
    """Save an albertized model with the tokenizer its source was trained with (its ids are the
    embedding rows): ``out`` then loads with ``AutoModelForSequenceClassification`` and
    ``AutoTokenizer``. ``config.edgebert_albertize["tokenizer"]`` says which tokenizer it is (e.g.
    WordPiece, not ALBERT's SentencePiece)."""
    out = Path(out)
    record = dict(getattr(albert.config, RECORD_KEY, None) or {})
    record["tokenizer"] = (f"the source model's {_tokenizer_kind(tokenizer)} ({type(tokenizer).__name__}), "
                           "not ALBERT's SentencePiece: the embedding rows follow its ids")
    setattr(albert.config, RECORD_KEY, record)
    albert.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
