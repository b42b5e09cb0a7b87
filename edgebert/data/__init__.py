"""Datasets for text classification: local CSV/TSV/JSONL files, the builtin demo set, Hub ids.

Public interface::

    from edgebert.data import Dataset, Split, load_dataset, collate_batches, encode_texts, BUILTIN_DATASETS, file_sha256
"""

from __future__ import annotations

from .batching import collate_batches, encode_texts
from .dataset import Dataset, Split
from .loader import BUILTIN_DATASETS, file_sha256, load_dataset

__all__ = ["Split", "Dataset", "load_dataset", "BUILTIN_DATASETS", "collate_batches", "encode_texts", "file_sha256"]
