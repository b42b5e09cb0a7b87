"""Helpers shared by several stage modules: loading the current model, checking a change on the dev
split, validating an export, and the order rules that several kinds declare alike."""

from __future__ import annotations

from typing import Any

from edgebert.errors import ExportValidationError
from edgebert.stages.registry import Artifact, RunContext, StageResult, forbids, model_ref, requires

#: a stage that changes the torch model must come before every export (exports capture it as it is then)
BEFORE_EXPORTS = forbids(
    "export", "{here} comes after '{kind}' (stage {at}): exports capture the model as it is then, so this change "
              "would not reach the exported files. Put finetune, prune and distill before every export.")
#: training and pruning must come before sparsify (they would refill / re-rank the zeroed weights)
BEFORE_SPARSIFY = forbids(
    "torch:sparse", "{here} comes after '{kind}' (stage {at}): training would refill the zeroed weights and "
                    "pruning would re-rank them. Put sparsify after finetune, prune and distill.")
#: a stage that reads the ONNX model needs an export to ONNX before it
NEEDS_ONNX = requires("onnx", "{here} needs an ONNX model: put an 'export-onnx' stage before it.")


def load(ref: str, ctx: RunContext):
    from edgebert import models

    loaded = models.load(ref)
    data = ctx.dataset.with_labels(loaded.label_names)
    return loaded, data


def dev_logits(loaded, data, max_length: int = 128):
    from edgebert.evaluation import predict_logits

    return predict_logits(loaded.model, loaded.tokenizer, data.split("dev"), max_length=max_length)


def agreement(before, after, labels) -> dict[str, Any]:
    """Dev accuracy before/after and how often the two models pick the same label."""
    import numpy as np

    labels = np.asarray(labels)
    a, b = before.argmax(-1), after.argmax(-1)
    return {
        "n": int(len(labels)),
        "accuracy_before": float((a == labels).mean()),
        "accuracy_after": float((b == labels).mean()),
        "label_agreement": float((a == b).mean()),
        "max_abs_logit_diff": float(np.abs(before - after).max()),
    }


def save(loaded, ctx: RunContext) -> str:
    out = ctx.work / "model"
    loaded.model.save_pretrained(out)
    from edgebert.models import save_tokenizer

    save_tokenizer(loaded.tokenizer, out)
    return str(out)


def change_in_place(art: Artifact, ctx: RunContext, change, keys: tuple[str, ...],
                    max_length: int = 128) -> StageResult:
    """Load the current model, apply ``change(loaded, data) -> report`` to it in place, save it and
    check it against itself before the change on the dev split; ``keys`` of the report become
    top-level metrics. The model before the change stays the teacher (if none was set yet)."""
    loaded, data = load(model_ref(art, art.model), ctx)
    before = dev_logits(loaded, data, max_length)
    report = change(loaded, data)
    after = dev_logits(loaded, data, max_length)
    out = save(loaded, ctx)
    check = agreement(before, after, data.split("dev").labels)
    metrics = {"dev_accuracy": check["accuracy_after"], **{k: report[k] for k in keys}, "report": report}
    return StageResult(art.replace(model=art.rel(out), teacher=art.teacher or art.model),
                       metrics=metrics, validation=check)


def check_export(report: dict[str, Any], max_diff: float, min_agree: float, what: str) -> None:
    if report["max_abs_logit_diff"] > max_diff or report["label_agreement"] < min_agree:
        raise ExportValidationError(
            f"The {what} disagrees with the model it came from: max |logit diff| "
            f"{report['max_abs_logit_diff']:.2e} (allowed {max_diff:.0e}), label agreement "
            f"{report['label_agreement']:.3f} (needed {min_agree:.3f}) on {report['n']} dev texts."
        )


def dev_split(ctx: RunContext, label_names: list[str]):
    return ctx.dataset.with_labels(label_names).split("dev")


def onnx_dev_accuracy(path, tokenizer, dev, max_length: int = 128) -> float:
    from edgebert.compress.quantize import onnx_accuracy_fn

    return onnx_accuracy_fn(tokenizer, dev.texts, dev.labels, pairs=dev.text_pairs, max_length=max_length)(str(path))
