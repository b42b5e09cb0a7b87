"""The ``vocab-prune`` stage: keep only the vocabulary the task uses (:func:`edgebert.compress.vocab.prune_vocabulary`):
the tokens of the training and dev texts, the special tokens, every single character and its ``##`` form (so an
unseen word still spells out in pieces instead of becoming [UNK]) and optionally the ``keep_top`` most frequent
others. The word-embedding table is most of a small model (MiniLM: 11.7M of 22.7M parameters); a task's
texts use a fraction of it (BANKING77: 4,354 of 30,522 tokens).

Validated like every change: on the texts it was pruned for, the logits must stay the same (the kept rows are
copied), else the run fails. How unseen text tokenizes differently is measured on the test split where there
is one (a report, nothing is chosen on it). WordPiece (BERT) and SentencePiece Unigram (ALBERT: tokenizer.json and
spiece.model alike) tokenizers; another kind (byte-level BPE) is left whole and the stage says so (skipped).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgebert.config import StageConfig
from edgebert.errors import UnsupportedTokenizerError
from edgebert.stages._shared import BEFORE_EXPORTS, load, save
from edgebert.stages.registry import Artifact, RunContext, StageResult, model_ref, register_stage


class VocabPruneConfig(StageConfig):
    """What to keep of the vocabulary besides what the training and dev texts use."""

    kind: Literal["vocab-prune"] = "vocab-prune"
    keep_top: int = Field(0, ge=0, description="Also keep this many of the most frequent other tokens (vocabulary "
                                               "order)")
    max_length: int = Field(128, ge=8, le=8192, description="Token cap of the logit check")


@register_stage(VocabPruneConfig, order=45, reads="torch", changes="torch", produces=("torch:vocab",),
                rules=(BEFORE_EXPORTS,),
                summary="Keep only the vocabulary the task's texts use (+ every single character); logits unchanged")
def vocab_prune(art: Artifact, cfg: VocabPruneConfig, ctx: RunContext) -> StageResult:
    from edgebert.compress.vocab import prune_vocabulary, tokenization_changes, validate_pruned_vocabulary
    from edgebert.runtime.wordpiece import write_vocab_txt

    loaded, data = load(model_ref(art, art.model), ctx)
    texts = []
    for name in ("train", "dev"):
        split = data.split(name)
        texts += list(split.texts) if split.text_pairs is None else list(zip(split.texts, split.text_pairs))
    try:
        model, tokenizer, report = prune_vocabulary(loaded.model, loaded.tokenizer, texts, keep_top=cfg.keep_top)
    except UnsupportedTokenizerError as exc:
        ctx.log(f"vocab-prune: skipped: {exc}")
        return StageResult(art, skipped=str(exc))
    rows = ctx.validation_rows()
    check_texts = list(rows.texts) if rows.text_pairs is None else list(zip(rows.texts, rows.text_pairs))
    validation = validate_pruned_vocabulary(loaded.model, loaded.tokenizer, model, tokenizer, report, check_texts,
                                            max_length=cfg.max_length)
    unseen = None
    if "test" in data.splits:  # measured, not chosen on: how the kept vocabulary meets text it never saw
        test = data.split("test")
        unseen = tokenization_changes(loaded.tokenizer, tokenizer, list(test.texts)).to_dict()
    loaded.model, loaded.tokenizer = model, tokenizer
    out = save(loaded, ctx)
    if not report.sentencepiece:  # SentencePiece: apps and the in-graph tokenizer read spiece.model instead
        write_vocab_txt(out)  # apps and the runtime's WordPiece read vocab.txt; not every tokenizer class writes it
    metrics = {"vocab_size_before": report.vocab_size_before, "vocab_size": report.vocab_size_after,
               "embedding_bytes_before": report.embedding_bytes(after=False), "embedding_bytes": report.embedding_bytes(),
               "unseen_test_tokenization": unseen,
               "report": report.to_dict()}
    return StageResult(art.replace(model=art.rel(out), teacher=art.teacher or art.model), metrics=metrics,
                       validation=validation.to_dict())
