"""In-memory dataset types: :class:`Split` (rows of one split) and :class:`Dataset` (all splits)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from edgebert.errors import DataError, LabelMismatchError

#: split names a :class:`Dataset` may hold, in display order
SPLIT_NAMES = ("train", "dev", "test")

#: other names callers may use for a split
SPLIT_ALIASES = {"validation": "dev", "valid": "dev", "val": "dev", "eval": "dev"}


def _format_names(names, limit: int = 10) -> str:
    names = list(names)
    shown = ", ".join(repr(n) for n in names[:limit])
    if len(names) > limit:
        shown += f", ... ({len(names) - limit} more)"
    return shown


@dataclass
class Split:
    """The rows of one split: texts, label indices and (for sentence-pair tasks) second texts."""

    texts: list[str]
    labels: list[int]
    text_pairs: list[str] | None = None

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise DataError(
                f"a split needs one label per text: got {len(self.texts)} texts and {len(self.labels)} labels"
            )
        if self.text_pairs is not None and len(self.text_pairs) != len(self.texts):
            raise DataError(
                f"a split needs one text pair per text: got {len(self.texts)} texts and "
                f"{len(self.text_pairs)} text pairs"
            )

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, indices) -> Split:
        """A new split holding the rows at ``indices`` (in that order)."""
        indices = [int(i) for i in indices]
        return Split(
            texts=[self.texts[i] for i in indices],
            labels=[self.labels[i] for i in indices],
            text_pairs=None if self.text_pairs is None else [self.text_pairs[i] for i in indices],
        )

    def subset(self, n: int, seed: int = 0) -> Split:
        """A seeded random subset of ``n`` rows that keeps the label proportions.

        Every label gets at least one row when ``n`` is at least the number of labels; the rest is
        shared in proportion to the label counts. The rows keep their original order. ``n`` at or
        above ``len(self)`` returns ``self``.
        """
        if int(n) >= len(self) >= 1:
            return self
        return self.select(self.subset_rows(n, seed))

    def subset_rows(self, n: int, seed: int = 0) -> list[int]:
        """The row indices :meth:`subset` takes, ascending (all rows when ``n`` is at least ``len(self)``)."""
        n = int(n)
        if n < 1:
            raise DataError(f"a subset needs at least 1 row, got n={n}")
        if n >= len(self):
            return list(range(len(self)))
        rng = np.random.default_rng(seed)
        by_label: dict[int, list[int]] = {}
        for i, label in enumerate(self.labels):
            by_label.setdefault(label, []).append(i)
        # Each row gets the key (rank within its label) / (label count): taking the n smallest keys
        # takes the first row of every label, then rows in proportion to the label sizes. Ties
        # are broken at random so that no label is favoured.
        keys = np.empty(len(self), dtype=np.float64)
        for rows in by_label.values():
            order = rng.permutation(len(rows))
            for rank, pos in enumerate(order):
                keys[rows[pos]] = rank / len(rows)
        tiebreak = rng.random(len(self))
        chosen = np.lexsort((tiebreak, keys))[:n]
        return sorted(chosen.tolist())

    def label_counts(self, num_labels: int | None = None) -> list[int]:
        """How many rows each label index has (length ``num_labels`` when given)."""
        size = num_labels if num_labels is not None else (max(self.labels) + 1 if self.labels else 0)
        counts = [0] * size
        for label in self.labels:
            counts[label] += 1
        return counts


@dataclass
class Dataset:
    """A labelled text-classification dataset with ``train`` and ``dev`` (and maybe ``test``) splits."""

    name: str
    label_names: list[str]
    splits: dict[str, Split]
    files: dict[str, str] = field(default_factory=dict)
    text_column: str = "text"
    label_column: str = "label"
    text_pair_column: str | None = None
    dev_from_train: bool = False
    out_of_scope_label: str | None = None  # the class of out-of-scope texts (edgebert.data.oos), if any

    def split(self, name: str) -> Split:
        """The split called ``name`` (``validation``/``val`` are accepted for ``dev``)."""
        key = SPLIT_ALIASES.get(name, name)
        try:
            return self.splits[key]
        except KeyError:
            available = ", ".join(s for s in SPLIT_NAMES if s in self.splits) or "none"
            raise DataError(f"dataset {self.name} has no {name!r} split; available splits: {available}") from None

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def label2id(self) -> dict[str, int]:
        return {name: i for i, name in enumerate(self.label_names)}

    def id2label(self) -> dict[int, str]:
        return dict(enumerate(self.label_names))

    def with_labels(self, label_names: list[str]) -> Dataset:
        """This dataset with its labels re-indexed to ``label_names`` (e.g. a model's label order).

        ``label_names`` may hold labels the dataset lacks; every dataset label must be in it, or a
        :class:`~edgebert.errors.LabelMismatchError` names both label sets.
        """
        label_names = [str(n) for n in label_names]
        if len(set(label_names)) != len(label_names):
            dups = sorted({n for n in label_names if label_names.count(n) > 1})
            raise LabelMismatchError(f"the target label list repeats labels: {_format_names(dups)}")
        if label_names == self.label_names:
            return self
        target = {name: i for i, name in enumerate(label_names)}
        missing = [n for n in self.label_names if n not in target]
        if missing:
            raise LabelMismatchError(
                f"dataset {self.name} has labels the model does not know: {_format_names(missing)}. "
                f"Dataset labels ({self.num_labels}): {_format_names(self.label_names, 20)}; "
                f"model labels ({len(label_names)}): {_format_names(label_names, 20)}. "
                "Fine-tune a model on this dataset's labels, or relabel the data."
            )
        mapping = [target[n] for n in self.label_names]
        splits = {
            key: Split(texts=s.texts, labels=[mapping[label] for label in s.labels], text_pairs=s.text_pairs)
            for key, s in self.splits.items()
        }
        return dataclasses.replace(self, label_names=label_names, splits=splits)

    def check_trainable(self) -> None:
        """Refuse a train split a classifier cannot learn from: every row has the same label (training
        would give a constant classifier with perfect dev scores on the same label)."""
        train = self.split("train")
        present = set(train.labels)
        if len(present) == 1:
            label = self.label_names[present.pop()]
            raise DataError(
                f"every one of the {len(train)} training rows has the label {label!r}: a classifier needs at "
                f"least two labels to learn. Add rows of the other labels, or check that --label-column (now "
                f"{self.label_column!r}) is the label column.",
                path=self.files.get("train"),
            )

    def summary(self) -> str:
        """One line: name, label count and rows per split."""
        sizes = ", ".join(f"{k} {len(self.splits[k])}" for k in SPLIT_NAMES if k in self.splits)
        extra = " (dev carved from train)" if self.dev_from_train else ""
        return f"{self.name}: {self.num_labels} labels; {sizes}{extra}"
