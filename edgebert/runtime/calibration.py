"""Confidence threshold for out-of-scope handling: answer only when the model is sure enough.

An assistant that maps every message to one of its intents also maps the messages that belong to
none of them. With a threshold, the classifier returns the unknown label when its top probability
is below it (:class:`edgebert.runtime.Classifier`), trading coverage (the share of inputs
answered) for precision (the accuracy on the inputs it does answer).

:func:`calibrate` picks the threshold on labelled dev data for a target precision: of all
thresholds that reach it on the dev data, the one that answers the most inputs. Inputs are ranked
by top probability; answering the ``k`` most confident gives accuracy ``correct[:k].sum() / k``;
the largest ``k`` whose accuracy is at least the target (cutting only between different
probabilities, so that the threshold answers exactly those ``k``) sets the threshold to the ``k``-th
highest probability. When every input can be answered at the target precision, the threshold is 0.
Check it on held-out data (:func:`selective_metrics`, ``edgebert calibrate --eval-split test``):
dev figures of a threshold chosen on dev are optimistic.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np

from edgebert.errors import ConfigError, DataError, LabelMismatchError

__all__ = ["CalibrationResult", "calibrate", "dataset_rows", "label_indices", "out_of_scope_at",
           "out_of_scope_threshold", "selective_metrics"]

#: thresholds at which the coverage / accuracy curve is reported
CURVE_THRESHOLDS = tuple(round(x, 2) for x in np.linspace(0.0, 1.0, 21))


@dataclass
class CalibrationResult:
    """The threshold chosen for ``target_precision`` and what it does on the calibration data."""

    target_precision: float
    threshold: float | None  # None: no threshold reaches the target on this data
    coverage: float | None  # share of inputs answered at the threshold
    answered_accuracy: float | None  # accuracy on the answered inputs
    answered: int  # inputs answered at the threshold
    n: int  # inputs scored
    accuracy: float  # accuracy when every input is answered (no threshold)
    best_accuracy: float  # highest answered accuracy any threshold reaches here (on >= 1 input)
    curve: list[dict[str, Any]] = field(default_factory=list)  # per CURVE_THRESHOLDS: see selective_metrics

    @property
    def reached(self) -> bool:
        return self.threshold is not None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "reached": self.reached}


def selective_metrics(probs: np.ndarray, labels: Sequence[int], threshold: float | None) -> dict[str, Any]:
    """Coverage and answered accuracy of ``probs`` (n, labels) against label indices at a threshold.

    Returns ``{"threshold", "answered", "coverage", "answered_accuracy"}``; answered accuracy is
    None when nothing is answered. ``threshold`` None answers everything.
    """
    probs = np.asarray(probs)
    y = np.asarray(labels, dtype=np.int64)
    if probs.ndim != 2 or len(y) != probs.shape[0]:
        raise DataError(f"need one label per row of probabilities: got {len(y)} labels for shape {probs.shape}")
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    keep = np.ones(len(y), dtype=bool) if threshold is None else conf >= threshold
    answered = int(keep.sum())
    return {"threshold": threshold, "answered": answered,
            "coverage": answered / len(y) if len(y) else None,
            "answered_accuracy": float(correct[keep].mean()) if answered else None}


def label_indices(labels: Sequence[str | int], names: Sequence[str]) -> list[int]:
    """Label names (or indices) -> indices into ``names`` (a classifier's labels)."""
    index = {n: i for i, n in enumerate(names)}
    out, unknown = [], []
    for value in labels:
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            if not 0 <= int(value) < len(names):
                raise LabelMismatchError(f"label index {value} is out of range for {len(names)} labels")
            out.append(int(value))
        elif str(value) in index:
            out.append(index[str(value)])
        else:
            unknown.append(str(value))
    if unknown:
        shown = ", ".join(repr(u) for u in sorted(set(unknown))[:10])
        raise LabelMismatchError(
            f"{len(set(unknown))} label(s) of the data are not labels of the model: {shown}. "
            f"The model's labels: {', '.join(repr(n) for n in list(names)[:10])}"
            + (f", ... ({len(names)} in all)" if len(names) > 10 else "")
        )
    return out


def dataset_rows(dataset, split: str) -> tuple[list[str], list[str] | None, list[str]]:
    """(texts, their second sentences or None, label names) of one split of an
    :class:`edgebert.data.Dataset`."""
    rows = dataset.split(split)
    pairs = None if rows.text_pairs is None else list(rows.text_pairs)
    return list(rows.texts), pairs, [dataset.label_names[i] for i in rows.labels]


def calibrate(classifier, texts: Sequence[str], labels: Sequence[str | int], *,
              precision: float = 0.95, text_pairs: Sequence[str] | None = None) -> CalibrationResult:
    """Pick the threshold that answers the most of ``texts`` with accuracy >= ``precision`` on them.

    ``classifier`` is an :class:`edgebert.runtime.Classifier` (anything with ``labels`` and
    ``predict_proba``); ``labels`` are the true label names (or indices into ``classifier.labels``);
    ``text_pairs`` the second sentences of a sentence-pair task.
    See the module doc for the rule. The classifier's own threshold is not used or changed.
    """
    if isinstance(precision, bool) or not isinstance(precision, (int, float)) or not 0.0 < precision <= 1.0:
        raise ConfigError(f"precision must be a number in (0, 1], got {precision!r}")
    texts = list(texts)
    if not texts:
        raise DataError("calibration needs at least one labelled text")
    y = np.asarray(label_indices(labels, classifier.labels), dtype=np.int64)
    if len(y) != len(texts):
        raise DataError(f"need one label per text: got {len(texts)} texts and {len(y)} labels")
    probs = np.asarray(classifier.predict_proba(texts) if text_pairs is None else
                       classifier.predict_proba(texts, list(text_pairs)))
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    order = np.argsort(-conf, kind="stable")
    conf_sorted, correct_sorted = conf[order], correct[order]
    k = np.arange(1, len(y) + 1)
    accuracy_at = np.cumsum(correct_sorted) / k  # accuracy when answering the k most confident
    # A threshold answers every input at or above it: cut only after the last of equal probabilities.
    cut_ok = np.append(conf_sorted[:-1] > conf_sorted[1:], True)
    good = np.flatnonzero(cut_ok & (accuracy_at >= precision - 1e-12))
    curve = [selective_metrics(probs, y, t) for t in CURVE_THRESHOLDS]
    result = CalibrationResult(target_precision=float(precision), threshold=None, coverage=None,
                               answered_accuracy=None, answered=0, n=len(y), accuracy=float(correct.mean()),
                               best_accuracy=float(accuracy_at[cut_ok].max()), curve=curve)
    if len(good):
        last = int(good[-1])  # the largest k reaching the target
        threshold = 0.0 if last == len(y) - 1 else float(conf_sorted[last])
        chosen = selective_metrics(probs, y, threshold)
        result.threshold = threshold
        result.coverage = chosen["coverage"]
        result.answered_accuracy = chosen["answered_accuracy"]
        result.answered = chosen["answered"]
    return result


def out_of_scope_at(probs: np.ndarray, labels: Sequence[int], oos_index: int,
                    threshold: float | None) -> dict[str, Any]:
    """:func:`edgebert.metrics.out_of_scope_metrics` of ``probs`` when texts whose top probability is below
    ``threshold`` are answered out of scope (None: no threshold)."""
    from edgebert.metrics import out_of_scope_metrics

    probs = np.asarray(probs)
    pred = probs.argmax(axis=1)
    answered = pred if threshold is None else np.where(probs.max(axis=1) >= threshold, pred, -1)
    return out_of_scope_metrics(labels, answered, oos_index)


def out_of_scope_threshold(probs: np.ndarray, labels: Sequence[int], oos_index: int, *,
                           recall: float = 0.9) -> dict[str, Any]:
    """The lowest threshold at which the out-of-scope recall on ``probs`` reaches ``recall``.

    A text counts as answered out of scope when its top label is the out-of-scope class or its top
    probability is below the threshold (the runtime then answers the unknown label, which calibrate
    names after the out-of-scope class). Out-of-scope texts the model already labels so need no
    threshold; each further one needs the threshold just above its top probability, so the k-th
    lowest such probability is the cheapest way to catch k more. Returns ``threshold`` (0.0: none
    needed; None: ``recall`` cannot be reached, e.g. no out-of-scope rows) and, at that threshold and
    without one, the in-scope accuracy and out-of-scope recall (see
    :func:`edgebert.metrics.out_of_scope_metrics`).
    """
    if isinstance(recall, bool) or not isinstance(recall, (int, float)) or not 0.0 < recall <= 1.0:
        raise ConfigError(f"out-of-scope recall must be a number in (0, 1], got {recall!r}")
    probs = np.asarray(probs)
    y = np.asarray(labels, dtype=np.int64)
    conf, pred = probs.max(axis=1), probs.argmax(axis=1)
    is_oos = y == oos_index
    n_oos = int(is_oos.sum())

    def at(threshold: float | None) -> dict[str, Any]:
        return out_of_scope_at(probs, y, oos_index, threshold)

    result = {"target_recall": float(recall), "threshold": None, "at_threshold": None, "without": at(None)}
    if n_oos == 0:
        return result
    missed = np.sort(conf[is_oos & (pred != oos_index)])
    needed = int(np.ceil(recall * n_oos - 1e-9)) - (n_oos - len(missed))
    if needed <= 0:
        threshold = 0.0
    else:
        threshold = float(np.nextafter(missed[needed - 1], np.inf))
        if threshold > 1.0:
            return result
    result.update(threshold=threshold, at_threshold=at(threshold))
    return result
