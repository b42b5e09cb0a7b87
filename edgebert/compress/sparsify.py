"""Unstructured magnitude sparsity: set the smallest-magnitude encoder weights to zero.

Reported for what it is. The matrices keep their shapes, so dense kernels (onnxruntime's CPU
MatMul / MatMulInteger, PyTorch, TensorRT without 2:4 structured sparsity) do exactly the same
work and the model file (dense fp32 or int8 tensors) has exactly the same size. What zeros buy
is a smaller *compressed* download (zeros deflate well; :func:`sparsity_report` measures it with
zlib) and a model ready for a sparse runtime. Speed and size on disk come from structured pruning
(:mod:`edgebert.compress.prune`), not from this.

Every ``nn.Linear`` inside the transformer layers is sparsified (query / key / value / attention
output, FFN in / out; ALBERT's one shared layer once), not the embeddings, pooler or classifier.
One-shot, without retraining: a later distillation or fine-tuning would refill the zeros, so the
pipeline only allows this stage after them.
"""

from __future__ import annotations

import zlib
from typing import Any

from edgebert.errors import CompressionError
from edgebert.models.specs import ArchSpec


def encoder_linears(model, spec: ArchSpec) -> list[tuple[str, Any]]:
    """``(name, nn.Linear)`` for every Linear inside the distinct transformer layers."""
    import torch

    out = []
    for i, layer in enumerate(spec.layer_modules(model)):
        for name, module in layer.named_modules():
            if isinstance(module, torch.nn.Linear):
                out.append((f"layer{i}.{name}", module))
    if not out:
        raise CompressionError(f"No Linear weights found in the transformer layers ({spec.model_type}).")
    return out


def _deflated(tensors) -> int:
    return sum(len(zlib.compress(t.detach().cpu().contiguous().numpy().tobytes(), 6)) for t in tensors)


def sparsify_(model, spec: ArchSpec, *, sparsity: float = 0.5, scope: str = "per-matrix") -> dict[str, Any]:
    """Zero the smallest-magnitude encoder weights of ``model`` in place; returns the report.

    ``sparsity``: the fraction of the encoder's Linear weights set to zero; ``scope``: the same fraction
    in every matrix (``per-matrix``) or one threshold across them (``global``); see
    :class:`edgebert.stages.sparsify.SparsifyConfig`.
    """
    import torch

    linears = encoder_linears(model, spec)
    weights = [m.weight for _, m in linears]
    deflated_before = _deflated(weights)
    zeros_before = sum(int((w == 0).sum()) for w in weights)
    with torch.no_grad():
        if scope == "global":
            mags = torch.cat([w.abs().flatten() for w in weights])
            k = int(round(sparsity * mags.numel()))
            # exactly k zeros: rank every weight once across all matrices
            order = torch.argsort(mags, stable=True)[:k]
            mask = torch.ones_like(mags, dtype=torch.bool)
            mask[order] = False
            start = 0
            for w in weights:
                n = w.numel()
                w.mul_(mask[start:start + n].view_as(w))
                start += n
        else:
            for w in weights:
                k = int(round(sparsity * w.numel()))
                order = torch.argsort(w.abs().flatten(), stable=True)[:k]
                w.view(-1)[order] = 0.0
    return sparsity_report(model, spec) | {
        "config": {"sparsity": sparsity, "scope": scope},
        "zeros_before": zeros_before,
        "deflated_bytes_before": deflated_before,
    }


def sparsity_report(model, spec: ArchSpec) -> dict[str, Any]:
    """Zeros per encoder matrix and overall, and the zlib-deflated size of the encoder weights."""
    linears = encoder_linears(model, spec)
    per_matrix = {name: float((m.weight == 0).float().mean()) for name, m in linears}
    total = sum(m.weight.numel() for _, m in linears)
    zeros = sum(int((m.weight == 0).sum()) for _, m in linears)
    all_params = sum(p.numel() for p in model.parameters())
    return {
        "encoder_weights": total,
        "zeros": zeros,
        "encoder_sparsity": zeros / total,
        "model_sparsity": zeros / all_params,
        "per_matrix": per_matrix,
        "dense_bytes_fp32": 4 * all_params,
        "deflated_bytes": _deflated([m.weight for _, m in linears]),
        "note": "dense kernels do the same work on zeros and dense files keep their size; only a compressed "
                "download or a sparse runtime gains",
    }
