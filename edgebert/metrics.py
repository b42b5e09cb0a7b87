"""Classification metrics: accuracy and macro precision/recall/F1, per-class report, confusion."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def classification_metrics(
    y_true: Sequence[int], y_pred: Sequence[int], label_names: Sequence[str], *, detail: bool = False,
    out_of_scope_label: str | None = None,
) -> dict[str, Any]:
    """Accuracy and macro-averaged precision, recall and F1 over all ``label_names``.

    Macro averages run over the labels present in ``y_true`` (a label without support has no
    defined recall); precision of a never-predicted label counts as 0 (``zero_division=0``). With ``detail``: a per-class report and the confusion matrix
    (rows = true label, columns = predicted label, in ``label_names`` order). With
    ``out_of_scope_label`` (one of ``label_names``): ``out_of_scope``, see :func:`out_of_scope_metrics`.
    """
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    labels = list(range(len(label_names)))
    present = sorted(set(y_true.tolist()))
    p, r, f, _ = precision_recall_fscore_support(
        y_true, y_pred, labels=present, average="macro", zero_division=0
    )
    out: dict[str, Any] = {
        "n": int(y_true.size),
        "accuracy": float((y_true == y_pred).mean()) if y_true.size else 0.0,
        "macro_precision": float(p),
        "macro_recall": float(r),
        "macro_f1": float(f),
    }
    if out_of_scope_label is not None and out_of_scope_label in label_names:
        out["out_of_scope"] = out_of_scope_metrics(y_true, y_pred, list(label_names).index(out_of_scope_label))
    if detail:
        pc, rc, fc, sc = precision_recall_fscore_support(
            y_true, y_pred, labels=labels, average=None, zero_division=0
        )
        out["per_class"] = {
            name: {"precision": float(pc[i]), "recall": float(rc[i]), "f1": float(fc[i]), "support": int(sc[i])}
            for i, name in enumerate(label_names)
        }
        out["confusion_matrix"] = {
            "labels": list(label_names),
            "matrix": confusion_matrix(y_true, y_pred, labels=labels).tolist(),
        }
    return out


def format_report(metrics: dict[str, Any]) -> str:
    """A plain-text per-class table (as printed by ``edgebert eval --report``)."""
    rows = metrics.get("per_class") or {}
    width = max([len("label")] + [len(n) for n in rows])
    lines = [f"{'label':<{width}}  precision  recall     f1  support"]
    for name, m in rows.items():
        lines.append(
            f"{name:<{width}}  {m['precision']:9.3f}  {m['recall']:6.3f}  {m['f1']:5.3f}  {m['support']:7d}"
        )
    return "\n".join(lines)


def out_of_scope_metrics(y_true: Sequence[int], y_pred: Sequence[int], oos_index: int) -> dict[str, Any]:
    """The out-of-scope metrics of CLINC150 (Larson et al., 2019): in-scope accuracy (an in-scope text
    answered as out of scope counts as wrong) and out-of-scope recall, plus out-of-scope precision.

    ``y_pred`` holds label indices; an index outside the labels (e.g. -1: below a confidence
    threshold) means "not answered", which counts as an out-of-scope answer. None where a side has no
    rows.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    said_oos = (y_pred == oos_index) | (y_pred < 0)
    is_oos = y_true == oos_index
    n_in, n_oos = int((~is_oos).sum()), int(is_oos.sum())
    return {
        "in_scope_n": n_in, "out_of_scope_n": n_oos,
        "in_scope_accuracy": float((y_pred[~is_oos] == y_true[~is_oos]).mean()) if n_in else None,
        "out_of_scope_recall": float(said_oos[is_oos].mean()) if n_oos else None,
        "out_of_scope_precision": float(is_oos[said_oos].mean()) if said_oos.any() else None,
    }
