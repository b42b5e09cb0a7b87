"""Unstructured magnitude sparsity on tiny BERT and ALBERT classifiers."""

from __future__ import annotations

import pytest
import torch

from edgebert import models
from edgebert.compress.sparsify import encoder_linears, sparsify_


@pytest.mark.parametrize("arch", ["bert", "albert"])
@pytest.mark.parametrize("scope", ["per-matrix", "global"])
def test_smallest_weights_are_zeroed_and_nothing_else_changes(arch, scope, request):
    folder = request.getfixturevalue({"bert": "tiny_classifier_dir", "albert": "tiny_albert_classifier_dir"}[arch])
    loaded = models.load(str(folder))
    model, spec = loaded.model, loaded.spec
    linears = encoder_linears(model, spec)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    targeted = {id(m.weight) for _, m in linears}
    report = sparsify_(model, spec, sparsity=0.3, scope=scope)
    total = sum(m.weight.numel() for _, m in linears)
    assert report["zeros"] == round(0.3 * total) if scope == "global" else abs(report["zeros"] - 0.3 * total) <= len(linears)
    assert report["encoder_sparsity"] == pytest.approx(0.3, abs=1e-3)
    if scope == "per-matrix":
        assert all(v == pytest.approx(0.3, abs=1e-2) for v in report["per_matrix"].values())
    for _, m in linears:  # every kept weight is at least as large as every zeroed one (per matrix)
        w, old = m.weight.detach(), before_weight(before, model, m)
        kept, gone = old[w != 0].abs(), old[w == 0].abs()
        if scope == "per-matrix":
            assert kept.min() >= gone.max()
        assert torch.equal(w[w != 0], old[w != 0])
    # embeddings, pooler and classifier untouched
    for name, p in model.named_parameters():
        if id(p) not in targeted:
            assert torch.equal(p.detach(), before[name]), name
    assert report["deflated_bytes"] < report["deflated_bytes_before"]
    assert report["dense_bytes_fp32"] == 4 * sum(p.numel() for p in model.parameters())
    # ALBERT: the one shared layer is sparsified once; the model still runs
    assert len({id(m) for _, m in linears}) == len(linears)
    out = model(**loaded.tokenizer(["a fine film"], return_tensors="pt")).logits
    assert torch.isfinite(out).all()


def before_weight(state: dict, model, module) -> torch.Tensor:
    name = next(n for n, p in model.named_parameters() if p is module.weight)
    return state[name]
