"""Out-of-scope examples: texts that belong to no label, trained as one more class.

An assistant that maps every message to one of its intents answers "what's the weather tomorrow?" with
a confident intent. Following the CLINC150 setting (Larson et al., 2019), edgebert adds the texts of
``--oos-data`` as an extra class (``out_of_scope`` unless renamed), split into train / dev / test with a
fixed seed so that dev (used for choosing a threshold) and test (reported once) hold out-of-scope texts
the model never trained on. Metrics are the field's: in-scope accuracy and out-of-scope recall
(:func:`edgebert.metrics.out_of_scope_metrics`).

The file: one text per line (``.txt``), or a CSV / TSV / JSONL file whose text column is found as for
a dataset (``text``, ``sentence``, ...; no label column needed).
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np

from edgebert.data.dataset import Dataset, Split
from edgebert.errors import DataError

#: the label out-of-scope texts get, unless another name is asked for
DEFAULT_OOS_LABEL = "out_of_scope"
#: shares of the out-of-scope texts that go to dev and test (the rest trains)
DEV_SHARE = 0.2
TEST_SHARE = 0.2
#: fewer texts than this cannot give every split some
MIN_TEXTS = 10


def read_oos_texts(path: str | os.PathLike, *, text_column: str | None = None) -> list[str]:
    """The texts of an out-of-scope file (see the module doc), stripped, empty lines and duplicates
    dropped, in file order; DataError for a missing, unreadable or too small file."""
    from edgebert.data.files import SUPPORTED_EXTENSIONS, TEXT_COLUMNS, _find_column, _first_match, read_table, read_text

    p = Path(path)
    if not p.is_file():
        raise DataError(f"out-of-scope file not found: {p} (one text per line, or a CSV / JSONL file with a "
                        "text column)", path=str(p))
    if p.suffix.lower() in SUPPORTED_EXTENSIONS:
        table = read_table(p)
        column = _find_column(table.columns, text_column) if text_column else _first_match(table.columns, TEXT_COLUMNS)
        if column is None:
            looked = repr(text_column) if text_column else ", ".join(TEXT_COLUMNS)
            raise DataError(f"no text column ({looked}); columns found: {', '.join(table.columns)}", path=str(p))
        raw = [str(row.get(column) or "") for _, row in table.rows]
    else:
        raw = read_text(p).splitlines()
    texts = list(dict.fromkeys(t.strip() for t in raw if t and t.strip()))
    if len(texts) < MIN_TEXTS:
        raise DataError(f"{len(texts)} distinct out-of-scope texts; at least {MIN_TEXTS} are needed so that "
                        "train, dev and test each get some", path=str(p))
    return texts


def with_out_of_scope(dataset: Dataset, texts: list[str], *, label: str = DEFAULT_OOS_LABEL,
                      seed: int = 0, source: str | None = None) -> Dataset:
    """``dataset`` with ``texts`` added as the class ``label`` (last in the label order), split into
    train / dev / test (dev and test get DEV_SHARE and TEST_SHARE of them, seeded; a dataset without a
    test split gets none there). Texts that are also in-scope rows of the dataset are dropped (a text
    cannot be both). DataError when ``label`` is already one of the dataset's labels or a sentence-pair
    task is given (its second sentences would be undefined)."""
    label = str(label).strip()
    if not label:
        raise DataError("the out-of-scope label name is empty")
    if label in dataset.label_names:
        raise DataError(f"the dataset already has a label {label!r}; name the out-of-scope class otherwise "
                        "(--oos-label NAME), or leave --oos-data out if that label already holds such texts")
    if dataset.text_pair_column is not None:
        raise DataError("out-of-scope texts are single sentences; this dataset is a sentence-pair task")
    in_scope = {t for s in dataset.splits.values() for t in s.texts}
    kept = [t for t in texts if t not in in_scope]
    if len(kept) < MIN_TEXTS:
        raise DataError(f"only {len(kept)} out-of-scope texts are not also in-scope rows of {dataset.name}; "
                        f"at least {MIN_TEXTS} are needed")
    order = np.random.default_rng(seed).permutation(len(kept)).tolist()
    n_dev = max(1, round(DEV_SHARE * len(kept)))
    n_test = max(1, round(TEST_SHARE * len(kept))) if "test" in dataset.splits else 0
    parts = {"dev": order[:n_dev], "test": order[n_dev:n_dev + n_test], "train": order[n_dev + n_test:]}
    index = len(dataset.label_names)
    splits = {}
    for name, split in dataset.splits.items():
        add = [kept[i] for i in sorted(parts.get(name, []))]
        splits[name] = Split(texts=list(split.texts) + add, labels=list(split.labels) + [index] * len(add))
    files = dict(dataset.files)
    if source:
        files["out_of_scope"] = str(source)
    return dataclasses.replace(dataset, label_names=[*dataset.label_names, label], splits=splits, files=files,
                               out_of_scope_label=label)
