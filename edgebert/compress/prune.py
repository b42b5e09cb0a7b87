"""Structured pruning: physically remove attention heads, FFN neurons and whole layers.

Importance is measured on a sample of labelled training data, then the least important structure
is sliced out of the weight matrices, so the pruned model is smaller and faster with any runtime
(no masks are left behind):

- heads: gradient-based head importance (Michel et al., 2019, "Are Sixteen Heads Really Better
  than One?"): a gate (=1) multiplies each head's context vector; ``|d loss / d gate|`` summed
  over batches, L2-normalised per layer.
- FFN neurons: first-order Taylor importance ``|activation * d loss / d activation|`` of the
  intermediate activations, summed over the non-padding tokens.
- layers: the loss increase when a layer is skipped (replaced by the identity).

Works the same on transformers 4.x and 5.x: transformers 5 removed ``prune_heads``, ``head_mask``
and ``config.pruned_heads``, so nothing here uses them. Heads are gated with a forward pre-hook on
the attention output projection (its input is the concatenated per-head context in both versions
and both architectures; ALBERT's attention module applies that projection internally, so its
module output would be too late) and removed by slicing the query/key/value rows and the output
projection's columns.

Because layers may end up with different head counts, which no transformers config can express,
the kept heads are recorded in ``model.config.edgebert_pruning["heads"]`` (saved in config.json);
:func:`edgebert.models.load` re-applies them before loading the weights. FFN and layer pruning
are expressed by ``intermediate_size`` / ``num_hidden_layers``, so plain transformers reloads them.

ALBERT: the one shared layer is pruned once and every use sees the same pruned weights; its
importance is summed over all uses; dropping layers means running the shared layer fewer times.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from edgebert.errors import CompressionError
from edgebert.models.pruning import (  # the physical removal, with the models (loading re-applies it)
    RECORD_KEY,
    _check_indices,
    _heads,
    apply_recorded_pruning_,
    drop_layers_,
    prune_ffn_,
    prune_heads_,
    pruning_record,
)
from edgebert.models.specs import ArchSpec, get_path

if TYPE_CHECKING:
    import torch

__all__ = [
    "RECORD_KEY",
    "apply_recorded_pruning_",
    "count_parameters",
    "drop_layers_",
    "ffn_importance",
    "gradient_importance",
    "head_importance",
    "layer_importance",
    "prune",
    "prune_ffn_",
    "prune_heads_",
    "pruning_record",
    "sample_batches",
]



# -- small helpers ---------------------------------------------------------------------------


def count_parameters(model) -> int:
    """Number of distinct parameters (ALBERT's shared layer counted once)."""
    return sum(p.numel() for p in model.parameters())


def _device(model):
    return next(model.parameters()).device


def _round(x: float) -> int:
    return int(math.floor(x + 0.5))  # half up, not Python's round-half-to-even


def sample_batches(split, tokenizer, *, samples: int, batch_size: int, max_length: int,
                   seed: int = 0) -> list[tuple[dict, torch.Tensor]]:
    """A seeded, label-stratified sample of ``split``, tokenised into ``(inputs, labels)`` batches."""
    from edgebert.data import collate_batches

    if len(split) == 0:
        raise CompressionError("Cannot measure importance on an empty training split.")
    part = split.subset(samples, seed=seed)
    return [(inputs, labels) for inputs, labels, _rows in
            collate_batches(part, tokenizer, batch_size=batch_size, max_length=max_length,
                            sort_by_length=True)]


def _as_batches(batches: Iterable) -> list[tuple[dict, torch.Tensor]]:
    """``(inputs, labels[, rows])`` tuples (as ``collate_batches`` yields them) -> a list of pairs."""
    out = [(b[0], b[1]) for b in batches]
    if not out:
        raise CompressionError("Importance needs at least one batch of labelled examples.")
    return out


def _loss(model, inputs: dict, labels, reduction: str = "mean"):
    import torch.nn.functional as F

    device = _device(model)
    logits = model(**{k: v.to(device) for k, v in inputs.items()}).logits  # (batch, labels)
    return F.cross_entropy(logits.float(), labels.to(device), reduction=reduction)


@contextmanager
def _measuring(model) -> Iterator[None]:
    """Eval mode (no dropout) and frozen weights for the duration; both restored afterwards."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)  # gradients are only needed w.r.t. gates and activations
    try:
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


# -- importance ------------------------------------------------------------------------------


def gradient_importance(model, spec: ArchSpec, batches: Iterable, *, heads: bool = True,
                        ffn: bool = True) -> tuple[torch.Tensor | None, list[torch.Tensor] | None]:
    """Head and FFN-neuron importance from one pass of forward/backward over ``batches``.

    Returns ``(heads, ffn)``: ``heads`` (distinct_layers, max_heads), per-layer L2-normalised
    ``|d loss / d gate|`` (NaN pads layers that have fewer heads after earlier pruning); ``ffn`` a
    list with one (intermediate,) tensor per distinct layer of summed ``|a * d loss / d a|``.
    ALBERT: one distinct layer; the hooks fire at every use, so importance sums over all uses.
    """
    import torch

    batches = _as_batches(batches)
    layers = spec.layer_modules(model)
    device = _device(model)
    gates, handles = [], []
    ffn_scores = [torch.zeros(get_path(layer, spec.ffn_out).in_features, dtype=torch.float64)
                  for layer in layers]
    current: dict[str, torch.Tensor] = {}  # attention mask of the running batch, (batch, seq)

    def gate_hook(gate, n_heads, head_size):
        def hook(module, args):
            context = args[0]  # (batch, seq, n_heads * head_size), heads concatenated
            shape = context.shape
            gated = context.reshape(*shape[:-1], n_heads, head_size) * gate.to(context.dtype)[:, None]
            return (gated.reshape(shape), *args[1:])
        return hook

    def ffn_hook(i):
        def hook(module, args):
            act = args[0]  # (batch, seq, intermediate), after the activation function
            if not act.requires_grad:
                return None
            mask = current.get("mask")
            if mask is None or mask.shape != act.shape[:2]:  # e.g. chunked feed-forward
                mask = torch.ones(act.shape[:2], device=act.device)
            detached = act.detach()

            def on_grad(grad):
                taylor = (detached * grad).abs() * mask[..., None].to(grad.dtype)
                ffn_scores[i].add_(taylor.sum(dim=(0, 1)).double().cpu())
            act.register_hook(on_grad)
            return None
        return hook

    with _measuring(model), torch.enable_grad():  # also when called under no_grad
        try:
            for i, layer in enumerate(layers):
                n_heads, head_size = _heads(model, spec, i)
                # Gates always exist (even for FFN-only importance): with frozen weights they are
                # what makes the intermediate activations part of the autograd graph.
                gate = torch.ones(n_heads, device=device, requires_grad=True)
                gates.append(gate)
                handles.append(get_path(layer, spec.attn_out).register_forward_pre_hook(
                    gate_hook(gate, n_heads, head_size)))
                if ffn:
                    handles.append(get_path(layer, spec.ffn_out).register_forward_pre_hook(ffn_hook(i)))
            head_scores = [torch.zeros(g.shape[0], dtype=torch.float64) for g in gates]
            for inputs, labels in batches:
                mask = inputs.get("attention_mask")
                current["mask"] = (mask if mask is not None
                                   else torch.ones(inputs["input_ids"].shape, dtype=torch.long)).to(device)
                loss = _loss(model, inputs, labels)
                loss.backward()
                for i, gate in enumerate(gates):
                    head_scores[i] += gate.grad.detach().abs().double().cpu()
                    gate.grad = None
        finally:
            for h in handles:
                h.remove()

    head_out = None
    if heads:
        width = max(s.shape[0] for s in head_scores)
        head_out = torch.full((len(head_scores), width), float("nan"))
        for i, s in enumerate(head_scores):
            # Michel et al.: normalise each layer's scores by their L2 norm, so that layers with
            # large gradients do not dominate a global ranking.
            head_out[i, : s.shape[0]] = (s / (s.norm() + 1e-20)).float()
    return head_out, ([s.float() for s in ffn_scores] if ffn else None)


def head_importance(model, spec: ArchSpec, batches: Iterable) -> torch.Tensor:
    """Gradient-based head importance, (distinct_layers, num_heads), L2-normalised per layer."""
    return gradient_importance(model, spec, batches, heads=True, ffn=False)[0]


def ffn_importance(model, spec: ArchSpec, batches: Iterable) -> list[torch.Tensor]:
    """First-order Taylor importance of the FFN neurons, one (intermediate,) tensor per distinct layer."""
    return gradient_importance(model, spec, batches, heads=False, ffn=True)[1]


@contextmanager
def _skip_use(model, spec: ArchSpec, target: int) -> Iterator[None]:
    """Make the ``target``-th layer use of every forward pass return its input (identity)."""
    n_uses = spec.num_layer_uses(model)
    state = {"calls": 0}

    def hook(module, args, kwargs, output):
        use = state["calls"] % n_uses  # layers run in order, n_uses calls per forward pass
        state["calls"] += 1
        if use != target:
            return None
        hidden = args[0] if args else kwargs["hidden_states"]
        # transformers 4 layers return a tuple (hidden, attentions...), transformers 5 a tensor
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    handles = [layer.register_forward_hook(hook, with_kwargs=True) for layer in spec.layer_modules(model)]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _mean_loss(model, batches) -> float:
    import torch

    total, n = 0.0, 0
    with torch.no_grad():
        for inputs, labels in batches:
            total += float(_loss(model, inputs, labels, reduction="sum"))
            n += int(labels.shape[0])
    return total / n


def layer_importance(model, spec: ArchSpec, batches: Iterable) -> torch.Tensor:
    """Loss increase on ``batches`` when layer use ``i`` is skipped, shape (num_hidden_layers,).

    Large = the model needs the layer. For ALBERT the entries are per use of the shared layer;
    dropping any k uses yields the same model (fewer runs of the same weights).
    """
    import torch

    batches = _as_batches(batches)
    with _measuring(model):
        base = _mean_loss(model, batches)
        scores = []
        for use in range(spec.num_layer_uses(model)):
            with _skip_use(model, spec, use):
                scores.append(_mean_loss(model, batches) - base)
    return torch.tensor(scores, dtype=torch.float32)


# -- choosing what to remove ----------------------------------------------------------------


def _choose_heads(scores: torch.Tensor, counts: list[int], fraction: float, scope: str) -> dict[int, list[int]]:
    """Kept head positions per layer: the lowest-scoring ``fraction`` go, one head per layer stays."""
    removed: dict[int, set[int]] = {i: set() for i in range(len(counts))}
    if scope == "per-layer":
        for i, n in enumerate(counts):
            order = sorted(range(n), key=lambda h: (float(scores[i, h]), h))
            removed[i] = set(order[: min(_round(fraction * n), n - 1)])
    else:
        total = sum(counts)
        budget = min(_round(fraction * total), total - len(counts))
        order = sorted(((float(scores[i, h]), i, h) for i, n in enumerate(counts) for h in range(n)))
        for _score, i, h in order:
            if budget == 0:
                break
            if counts[i] - len(removed[i]) > 1:
                removed[i].add(h)
                budget -= 1
    return {i: [h for h in range(n) if h not in removed[i]] for i, n in enumerate(counts)}


def prune(model, tokenizer, spec: ArchSpec, train_split, *, heads: float = 0.0, ffn: float = 0.0,
          layers: int | list[int] | None = None, scope: str = "per-layer", samples: int = 256, batch_size: int = 32,
          max_length: int = 128, seed: int = 0) -> dict[str, Any]:
    """Measure importance on a sample of ``train_split`` and prune ``model`` in place.

    ``heads`` / ``ffn``: fractions of attention heads / FFN neurons removed; ``layers``: the number of
    whole layers to drop, or the indices to keep; ``scope``: rank heads ``global``-ly or ``per-layer``;
    importance is measured on ``samples`` examples (``batch_size``, ``max_length``, ``seed``). The
    recipe stage's config (:class:`edgebert.stages.prune.PruneConfig`) describes each.

    Order: whole layers first (measured on the full model), then heads and FFN neurons, measured
    on the model that remains. ``train_split`` labels must be indexed in the model's label order.
    Returns a report: the structure kept, the importance scores and parameter counts.
    """
    if len(train_split) == 0:
        raise CompressionError("Pruning needs labelled training examples; the training split is empty.")
    if max(train_split.labels) >= model.config.num_labels:
        raise CompressionError(
            f"Training labels go up to {max(train_split.labels)} but the model has "
            f"{model.config.num_labels} outputs; index the labels in the model's label order."
        )
    before = count_parameters(model)
    n_layers = spec.num_layer_uses(model)
    batches = sample_batches(train_split, tokenizer, samples=samples, batch_size=batch_size,
                             max_length=max_length, seed=seed)
    report: dict[str, Any] = {
        "config": {"heads": heads, "ffn": ffn, "layers": layers, "scope": scope, "samples": samples,
                   "batch_size": batch_size, "max_length": max_length, "seed": seed},
        "architecture": spec.model_type,
        "samples": sum(int(labels.shape[0]) for _inputs, labels in batches),
        "parameters_before": before,
        "layers_before": n_layers,
        "importance": {"layers": None, "heads": None, "ffn": None},
    }
    notes: list[str] = []

    layers_kept = list(range(n_layers))
    if layers is not None and layers != []:
        if isinstance(layers, int):
            if layers >= n_layers:
                raise CompressionError(f"layers={layers} would drop every layer; the model has {n_layers}. "
                                       f"Use at most {n_layers - 1}.")
            n_keep = n_layers - layers
            if spec.shared_layers:
                layers_kept = list(range(n_keep))
                if layers:
                    notes.append("ALBERT: every layer runs the same shared weights, so dropping any "
                                 f"{layers} use(s) gives the same model; no layer importance measured.")
            elif layers:
                scores = layer_importance(model, spec, batches)
                report["importance"]["layers"] = scores.tolist()
                best = sorted(range(n_layers), key=lambda i: (-float(scores[i]), i))[:n_keep]
                layers_kept = sorted(best)
        else:
            layers_kept = _check_indices("layers to keep", layers, n_layers)
        if layers_kept != list(range(n_layers)):
            drop_layers_(model, spec, layers_kept)

    n_distinct = len(spec.layer_modules(model))
    heads_before = [_heads(model, spec, i)[0] for i in range(n_distinct)]
    heads_kept = {i: list(range(n)) for i, n in enumerate(heads_before)}
    ffn_before = model.config.intermediate_size
    if heads > 0 or ffn > 0:
        head_scores, ffn_scores = gradient_importance(model, spec, batches, heads=heads > 0, ffn=ffn > 0)
        if head_scores is not None:
            report["importance"]["heads"] = [row[: heads_before[i]].tolist() for i, row in enumerate(head_scores)]
            heads_kept = _choose_heads(head_scores, heads_before, heads, scope)
            prune_heads_(model, spec, heads_kept)
        if ffn_scores is not None:
            report["importance"]["ffn"] = [s.tolist() for s in ffn_scores]
            size = ffn_scores[0].shape[0]
            n_keep = max(1, size - _round(ffn * size))
            keep = {i: sorted(s.argsort(descending=True, stable=True)[:n_keep].tolist())
                    for i, s in enumerate(ffn_scores)}
            prune_ffn_(model, spec, keep)

    after = count_parameters(model)
    report.update({
        "layers_kept": layers_kept,
        "heads_kept": {str(i): h for i, h in heads_kept.items()},
        "heads_per_layer": [len(heads_kept[i]) for i in range(n_distinct)],
        "heads_before": heads_before,
        "neurons_kept": int(model.config.intermediate_size),
        "neurons_before": int(ffn_before),
        "parameters_after": after,
        "parameters_removed": before - after,
        "parameter_ratio": after / before,
        "structure": pruning_record(model),
        "notes": notes,
    })
    return report
