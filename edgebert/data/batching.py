"""Batching a :class:`Split` into tokenized, dynamically padded tensors."""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from edgebert.errors import DataError

from .dataset import Split

if TYPE_CHECKING:
    import torch

# With shuffle and sort_by_length together, rows are sorted by length inside windows of this many
# batches, so that batches hold similar lengths but the epoch order stays random.
_SORT_WINDOW_BATCHES = 50


def _batch_order(split: Split, batch_size: int, shuffle: bool, seed: int, sort_by_length: bool) -> list[list[int]]:
    order = list(range(len(split)))
    rng = random.Random(seed)
    if shuffle:
        rng.shuffle(order)
    if sort_by_length:
        pairs = split.text_pairs

        def length(i: int) -> int:  # characters: a cheap, tokenizer-free proxy for token count
            return len(split.texts[i]) + (len(pairs[i]) if pairs is not None else 0)

        if shuffle:
            window = batch_size * _SORT_WINDOW_BATCHES
            order = [i for start in range(0, len(order), window)
                     for i in sorted(order[start:start + window], key=length, reverse=True)]
        else:  # longest first: a batch that does not fit in memory fails at once, not at the end
            order.sort(key=length, reverse=True)
    batches = [order[i:i + batch_size] for i in range(0, len(order), batch_size)]
    if shuffle and sort_by_length:
        rng.shuffle(batches)
    return batches


def collate_batches(
    split: Split,
    tokenizer: Any,
    *,
    batch_size: int,
    max_length: int = 128,
    shuffle: bool = False,
    seed: int = 0,
    sort_by_length: bool = False,
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor, list[int]]]:
    """Yield ``(inputs, labels, row_indices)`` batches of ``split``.

    ``inputs`` comes from ``tokenizer(..., padding="longest", truncation=True,
    max_length=max_length, return_tensors="pt")``: each batch is padded to its own longest row
    (at most ``max_length`` tokens), never to ``max_length``. ``labels`` is a LongTensor and
    ``row_indices`` are the positions of the batch rows in ``split``, so callers can restore the
    original order after ``shuffle`` or ``sort_by_length`` (which groups similar lengths together
    for fast evaluation). ``shuffle`` is reproducible with ``seed``.
    """
    if int(batch_size) < 1:
        raise DataError(f"batch_size must be at least 1, got {batch_size}")
    if int(max_length) < 2:
        raise DataError(f"max_length must be at least 2 tokens, got {max_length}")
    batches = _batch_order(split, int(batch_size), shuffle, seed, sort_by_length)
    return _iter_batches(split, tokenizer, batches, int(max_length))


def encode_texts(tokenizer: Any, texts: Sequence[str], pairs: Sequence[str] | None = None, **kwargs: Any):
    """``tokenizer(texts, pairs, **kwargs)``: the one call that tokenizes rows for a model.

    ``pairs`` holds the second sentences of a sentence-pair task (one per text; None for single
    texts): the tokenizer joins each pair as ``[CLS] text [SEP] pair [SEP]`` with token type 1 on
    the second segment, as the model saw them in training. Scoring or validating a pair model on
    ``texts`` alone measures a different task, so every caller that has the rows' pairs passes them.
    """
    texts = [str(t) for t in texts]
    if pairs is None:
        return tokenizer(texts, **kwargs)
    check_pairs(texts, pairs)
    return tokenizer(texts, [str(p) for p in pairs], **kwargs)


def check_pairs(texts: Sequence[str], pairs: Sequence[str] | None) -> None:
    """DataError unless ``pairs`` is None or holds one second sentence per text."""
    if pairs is not None and len(pairs) != len(texts):
        raise DataError(f"one text pair per text is needed: got {len(texts)} texts and {len(pairs)} pairs")


def _iter_batches(split: Split, tokenizer: Any, batches: list[list[int]], max_length: int):
    import torch

    for rows in batches:
        texts = [split.texts[i] for i in rows]
        pairs = [split.text_pairs[i] for i in rows] if split.text_pairs is not None else None
        enc = encode_texts(tokenizer, texts, pairs, padding="longest", truncation=True, max_length=max_length,
                           return_tensors="pt")
        labels = torch.tensor([split.labels[i] for i in rows], dtype=torch.long)
        yield dict(enc), labels, list(rows)
