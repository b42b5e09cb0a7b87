"""The pruned structure of a model: its record in the config, and the physical removal of heads, FFN
neurons and layers (weight matrices sliced, no masks left behind).

Model loading needs this to rebuild a head-pruned model from its config (:func:`apply_recorded_pruning_`,
called by :func:`edgebert.models.load`), so it lives with the models; the pruning algorithm, which
chooses what to remove, is :mod:`edgebert.compress.prune`.

Because layers may end up with different head counts, which no transformers config can express,
the kept heads are recorded in ``model.config.edgebert_pruning["heads"]`` (saved in config.json).
FFN and layer pruning are expressed by ``intermediate_size`` / ``num_hidden_layers``, so plain
transformers reloads them. ALBERT: the one shared layer is pruned once and every use sees the same
pruned weights; dropping layers means running the shared layer fewer times.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

from edgebert.errors import CompressionError
from edgebert.models.specs import ArchSpec, get_path

if TYPE_CHECKING:
    import torch

__all__ = [
    "RECORD_KEY", "apply_recorded_pruning_", "drop_layers_", "prune_ffn_", "prune_heads_", "pruning_record",
]

#: config attribute (saved in config.json) that records the pruned structure
RECORD_KEY = "edgebert_pruning"


def pruning_record(model) -> dict[str, Any]:
    """A copy of the pruned structure recorded in the model's config (empty when never pruned)."""
    return copy.deepcopy(getattr(model.config, RECORD_KEY, None) or {})


def _set_record(model, record: dict[str, Any]) -> None:
    setattr(model.config, RECORD_KEY, record)


def _heads(model, spec: ArchSpec, i: int) -> tuple[int, int]:
    """(number of heads, head size) of distinct layer ``i`` as its attention module runs it."""
    attn = spec.layer_part(model, "attn_module", i)
    return int(attn.num_attention_heads), int(attn.attention_head_size)


# -- physical removal ------------------------------------------------------------------------


def _slice_linear_(linear, index: torch.Tensor, dim: int) -> None:
    """Keep ``index`` rows (dim 0: output features, with the bias) or columns (dim 1: inputs)."""
    import torch

    weight = linear.weight
    index = index.to(weight.device)
    linear.weight = torch.nn.Parameter(weight.detach().index_select(dim, index).clone(),
                                       requires_grad=weight.requires_grad)
    if dim == 0:
        if linear.bias is not None:
            linear.bias = torch.nn.Parameter(linear.bias.detach()[index].clone(),
                                             requires_grad=linear.bias.requires_grad)
        linear.out_features = int(index.numel())
    else:
        linear.in_features = int(index.numel())


def _check_indices(what: str, indices, size: int) -> list[int]:
    values = sorted({int(i) for i in indices})
    if not values:
        raise CompressionError(f"{what}: at least one must be kept, got none.")
    if values[0] < 0 or values[-1] >= size:
        raise CompressionError(f"{what}: indices must be in 0..{size - 1}, got {list(indices)}.")
    return values


def prune_heads_(model, spec: ArchSpec, keep: dict[int, list[int]]) -> None:
    """Keep only the heads ``keep[layer]`` (current head positions) of each listed distinct layer.

    Slices query/key/value rows and the attention output projection's columns, and updates the
    attention module's ``num_attention_heads`` / ``all_head_size``. Layers not in ``keep`` stay
    as they are. The kept heads (as indices of the original model) are recorded in
    ``config.edgebert_pruning["heads"]`` so :func:`edgebert.models.load` can rebuild the shapes.
    """
    import torch

    layers = spec.layer_modules(model)
    record = pruning_record(model)
    heads_rec: dict[str, list[int]] = record.get("heads", {})
    plan = {}
    for i, positions in sorted((int(i), p) for i, p in keep.items()):  # check all before changing any
        if not 0 <= i < len(layers):
            raise CompressionError(f"prune_heads_: layer {i} does not exist; the model has "
                                   f"{len(layers)} distinct layer(s) (0..{len(layers) - 1}).")
        plan[i] = _check_indices(f"heads of layer {i}", positions, _heads(model, spec, i)[0])
    for i, kept in plan.items():
        n_heads, head_size = _heads(model, spec, i)
        if len(kept) == n_heads:
            continue
        rows = torch.cat([torch.arange(h * head_size, (h + 1) * head_size) for h in kept])
        for part in ("query", "key", "value"):
            _slice_linear_(spec.layer_part(model, part, i), rows, dim=0)
        _slice_linear_(spec.layer_part(model, "attn_out", i), rows, dim=1)
        attn = spec.layer_part(model, "attn_module", i)
        # Both names are read by the attention forward of transformers 4 (view / reshape sizes);
        # transformers 5 infers the head count from the tensor shapes but keeps the attributes.
        attn.num_attention_heads = len(kept)
        attn.all_head_size = len(kept) * head_size
        original = heads_rec.get(str(i), list(range(n_heads)))
        heads_rec[str(i)] = [original[h] for h in kept]
    if heads_rec:
        record["heads"] = heads_rec
        _set_record(model, record)


def prune_ffn_(model, spec: ArchSpec, keep: dict[int, Any]) -> None:
    """Keep only the FFN neurons ``keep[layer]`` (indices, list or tensor) of each distinct layer.

    Every layer must end up with the same number of neurons, so ``config.intermediate_size``
    describes the model and plain ``from_pretrained`` reloads it (which neurons differ per layer).
    """
    import torch

    layers = spec.layer_modules(model)
    keep = {int(i): (v.tolist() if isinstance(v, torch.Tensor) else v) for i, v in keep.items()}
    for i in keep:
        if not 0 <= i < len(layers):
            raise CompressionError(f"prune_ffn_: layer {i} does not exist; the model has "
                                   f"{len(layers)} distinct layer(s).")
    plan, sizes = {}, set()
    for i in range(len(layers)):
        size = spec.layer_part(model, "ffn_out", i).in_features
        if i in keep:
            plan[i] = _check_indices(f"FFN neurons of layer {i}", keep[i], size)
            sizes.add(len(plan[i]))
        else:
            sizes.add(size)
    if len(sizes) != 1:
        raise CompressionError(
            f"prune_ffn_ would leave layers with different FFN sizes {sorted(sizes)}; keep the same "
            "number of neurons in every layer (config.intermediate_size must describe all layers)."
        )
    for i, kept in plan.items():
        index = torch.tensor(kept, dtype=torch.long)
        _slice_linear_(spec.layer_part(model, "ffn_in", i), index, dim=0)
        _slice_linear_(spec.layer_part(model, "ffn_out", i), index, dim=1)
    model.config.intermediate_size = sizes.pop()


def drop_layers_(model, spec: ArchSpec, keep: list[int]) -> None:
    """Keep only the layers ``keep`` (indices of layer uses, in order) and update ``num_hidden_layers``.

    BERT: the other layers leave the module list; the head record is re-indexed and the teacher
    layers the student kept are recorded in ``config.edgebert_pruning["layers_kept"]`` (indices of
    the original model, read by distillation as its default layer map). ALBERT: all uses run the
    same shared weights, so only the count matters: the shared layer then runs ``len(keep)`` times
    and nothing is recorded (distillation maps layers uniformly).
    """
    import torch

    n_uses = spec.num_layer_uses(model)
    kept = _check_indices("layers", keep, n_uses)
    if spec.shared_layers:
        groups = int(getattr(model.config, "num_hidden_groups", 1))
        if len(kept) < groups:
            raise CompressionError(f"Keeping {len(kept)} layer use(s) of an ALBERT with num_hidden_groups="
                                   f"{groups} would leave layer groups unused; keep at least {groups}.")
        model.config.num_hidden_layers = len(kept)
        return
    layers = spec.layer_modules(model)
    if len(layers) != n_uses:
        raise CompressionError(f"The model has {len(layers)} layer modules but num_hidden_layers="
                               f"{n_uses}; it is not a plain stack of layers.")
    parent, name = spec.layers.rsplit(".", 1)
    setattr(get_path(model, parent), name, torch.nn.ModuleList([layers[k] for k in kept]))
    for j, k in enumerate(kept):
        for module in layers[k].modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = j  # used for key/value caches in decoder mode only
    model.config.num_hidden_layers = len(kept)
    record = pruning_record(model)
    previous = record.get("layers_kept", list(range(n_uses)))
    record["layers_kept"] = [previous[k] for k in kept]
    heads_rec = record.pop("heads", {})
    heads_rec = {str(j): heads_rec[str(k)] for j, k in enumerate(kept) if str(k) in heads_rec}
    if heads_rec:
        record["heads"] = heads_rec
    _set_record(model, record)


def apply_recorded_pruning_(model, spec: ArchSpec) -> None:
    """Re-create the recorded head pruning on a model freshly built from its saved config.

    Used by :func:`edgebert.models.load` before it loads the saved weights. FFN and layer pruning
    need nothing here: the config's ``intermediate_size`` / ``num_hidden_layers`` already build
    the right shapes.
    """
    record = pruning_record(model)
    heads = record.pop("heads", None)
    if not heads:
        return
    _set_record(model, record)  # prune_heads_ writes the same record back for the full model
    prune_heads_(model, spec, {int(k): list(v) for k, v in heads.items()})
