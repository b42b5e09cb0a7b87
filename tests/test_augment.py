"""Transfer-set augmentation for distillation (masking, word swaps, n-gram sampling)."""

from __future__ import annotations

import pytest

from edgebert.compress.augment import augment_texts
from edgebert.errors import CompressionError

TEXTS = ["it 's a charming and often affecting journey .",
         "unflinchingly bleak and desperate",
         "the acting , costumes , music , cinematography and sound are all astounding",
         "ok"]


def test_copies_are_deterministic_counted_and_mostly_different():
    out = augment_texts(TEXTS, 5, mask_token="[MASK]", seed=3)
    assert out == augment_texts(TEXTS, 5, mask_token="[MASK]", seed=3)
    assert out != augment_texts(TEXTS, 5, mask_token="[MASK]", seed=4)
    assert len(out) == 5 * len(TEXTS)
    assert [i for i, _ in out] == list(range(len(TEXTS))) * 5
    changed = [t != TEXTS[i] for i, t in out]
    assert sum(changed) >= 0.8 * len(out)
    words = {w for t in TEXTS for w in t.split()} | {"[MASK]"}
    for i, t in out:  # every word is the source's, a swap from the texts' words, or the mask token
        assert t and set(t.split()) <= words
    assert any("[MASK]" in t for _, t in out)
    # n-gram sampling cuts some copies to a short contiguous span
    assert any(len(t.split()) < len(TEXTS[i].split()) for i, t in out)


def test_ngram_only_and_no_mask_token():
    out = augment_texts(TEXTS[:3], 20, mask_token="[MASK]", seed=0, p_mask=0, p_swap=0, p_ngram=1.0, max_ngram=3)
    for i, t in out:  # every copy is a contiguous 1-3 word span of its source
        assert 1 <= len(t.split()) <= 3 and f" {t} " in f" {TEXTS[i]} "
    out = augment_texts(TEXTS, 3, mask_token=None, seed=0, p_ngram=0)
    assert not any("[MASK]" in t for _, t in out)
    assert all(len(t.split()) == len(TEXTS[i].split()) for i, t in out)
    assert augment_texts(TEXTS, 0, mask_token="[MASK]") == []


@pytest.mark.parametrize("bad", [{"copies": -1}, {"p_mask": 1.5}, {"p_ngram": -0.1}, {"max_ngram": 0}])
def test_bad_settings_raise(bad):
    kwargs = {"copies": 1, **bad}
    with pytest.raises(CompressionError):
        augment_texts(TEXTS, kwargs.pop("copies"), mask_token="[MASK]", **kwargs)
