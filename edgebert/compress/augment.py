"""Transfer-set augmentation for distillation (Tang et al., 2019, "Distilling Task-Specific Knowledge
from BERT into Simple Neural Networks", section 3.3).

A fine-tuned teacher is nearly one-hot on the sentences it was trained on, so distilling on the
training split alone gives the student little more than the hard labels, and a small student then
memorises a small training set. Perturbed copies of the training texts are sentences the teacher
has not seen: its soft outputs on them carry the knowledge the student should copy. The copies have
no labels of their own; the distillation trains on them with the teacher's outputs only.

Per word, with probability ``p_mask`` the word becomes the tokenizer's mask token, else with
probability ``p_swap`` a word drawn from the training texts' word distribution (Tang et al. swap
words of the same part of speech; without a tagger this draws from all words). Then, with
probability ``p_ngram``, the copy is cut to a random n-gram of 1..``max_ngram`` words. Words are
whitespace-separated tokens.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from edgebert.errors import CompressionError


def augment_texts(texts: Sequence[str], copies: int, *, mask_token: str | None, seed: int = 0,
                  p_mask: float = 0.1, p_swap: float = 0.1, p_ngram: float = 0.25,
                  max_ngram: int = 5) -> list[tuple[int, str]]:
    """``copies`` perturbed versions of every text, as ``(source index, text)`` pairs.

    Deterministic for a given ``seed``. Word swaps draw from the words of ``texts``, with repeats,
    so frequent words are drawn more often. A copy that came out
    identical to its source is perturbed again (at most a few tries), so most copies differ.
    """
    if copies < 0:
        raise CompressionError(f"augment copies must be >= 0, got {copies}")
    for name, p in (("p_mask", p_mask), ("p_swap", p_swap), ("p_ngram", p_ngram)):
        if not 0 <= p <= 1:
            raise CompressionError(f"{name} must be between 0 and 1, got {p}")
    if max_ngram < 1:
        raise CompressionError(f"max_ngram must be >= 1, got {max_ngram}")
    if mask_token is None:
        p_swap, p_mask = p_swap + p_mask, 0.0  # a tokenizer without a mask token: swap instead
    rng = random.Random(seed)
    words_of = [t.split() for t in texts]
    pool = [w for ws in words_of for w in ws]
    out: list[tuple[int, str]] = []
    for _ in range(copies):
        for i, words in enumerate(words_of):
            new = words
            for _try in range(4):
                new = _perturb(words, rng, mask_token, pool, p_mask, p_swap, p_ngram, max_ngram)
                if new != words:
                    break
            out.append((i, " ".join(new)))
    return out


def _perturb(words: list[str], rng: random.Random, mask_token: str | None, pool: list[str],
             p_mask: float, p_swap: float, p_ngram: float, max_ngram: int) -> list[str]:
    new = []
    for w in words:
        r = rng.random()
        if r < p_mask:
            new.append(mask_token)
        elif r < p_mask + p_swap and pool:
            new.append(rng.choice(pool))
        else:
            new.append(w)
    if len(new) > 1 and rng.random() < p_ngram:
        n = rng.randint(1, min(max_ngram, len(new)))
        start = rng.randint(0, len(new) - n)
        new = new[start:start + n]
    return new
