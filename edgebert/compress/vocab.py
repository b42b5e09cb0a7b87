"""Vocabulary pruning: keep only the word-embedding rows a task's texts can reach.

A BERT-family classifier spends most of its parameters on the word-embedding table (all-MiniLM-L6-v2:
30,522 x 384 = 11.7M of 22.7M), yet one task's texts use a small part of the vocabulary. This module
keeps (TextPruner, Yang et al. 2022, does the same for XLM-R):

- the special tokens (``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]``, ``[MASK]``) and every added token;
- every token the given texts (training and dev) tokenize into;
- every single-character piece and its ``##`` form, so that an unseen word still splits into pieces
  (down to single characters at worst) instead of becoming ``[UNK]`` (BERT's and MiniLM's vocabularies
  hold both forms of every character that occurs in them; :func:`tokenization_changes` counts
  ``[UNK]`` words before and after);
- optionally the ``keep_top`` most frequent other tokens. WordPiece vocabularies list their word pieces
  roughly by descending frequency in the corpus they were built from (BERT's: ``the``, ``of``, ``and``
  ... right after the special and single-character tokens), so vocabulary order is the frequency proxy;
  placeholders no text can produce (``[unused0]`` ...) are never taken.

Kept tokens keep their relative order and are renumbered 0..n-1; the embedding rows are gathered in
that order, ``config.vocab_size`` and ``config.pad_token_id`` follow, and the tokenizer is rewritten
with the same ids (``tokenizer.json``'s vocabulary, added tokens, post-processor and padding;
``vocab.txt``; ``tokenizer_config.json``'s ``added_tokens_decoder``).

Why the given texts' logits do not change: WordPiece is greedy longest-match-first. Where the full
vocabulary chose token ``t`` at some position of a word, every longer candidate was absent from it
and so is absent from the subset; ``t`` itself is kept; so the subset chooses ``t`` again, and a word
that was ``[UNK]`` stays ``[UNK]``. The ids are renumbered, the rows they select are the same
vectors, and nothing else in the model depends on the vocabulary (a sequence classifier has no
output embedding tied to it; :func:`prune_vocabulary` checks this). :func:`validate_pruned_vocabulary`
measures it, and what changes on unseen text.

SentencePiece Unigram tokenizers (ALBERT's ``spiece.model`` and its fast ``tokenizer.json``) are pruned
alike. The single-character rule keeps every one-character piece and its word-initial ``▁x`` form (and
every byte piece of a byte-fallback model); ``keep_top`` takes the highest-scoring other pieces. Why the
given texts' logits do not change: Unigram picks the segmentation with the highest total score (Viterbi).
Every path through the pruned vocabulary was a path through the full one, and the path the full vocabulary
chose uses kept pieces only, so it is still there and still the best; a character no piece holds costs
every path the same unknown-token score, so it cannot tip the choice either. ``spiece.model`` (the slow
tokenizer's and the in-graph SentencePiece operator's file) is rewritten with the same pieces, scores and
ids as ``tokenizer.json``.

Scope: WordPiece and SentencePiece Unigram tokenizers with a fast tokenizer (``tokenizer.json``).
Byte-level BPE (RoBERTa) is refused with a ConfigError; the model side (BERT and ALBERT embeddings) is
architecture-independent.
"""

from __future__ import annotations

import copy
import json
import re
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from edgebert.errors import CompressionError, ConfigError, ExportValidationError, UnsupportedTokenizerError
from edgebert.models.specs import get_spec

__all__ = [
    "TokenizationChanges",
    "VocabPruneReport",
    "VocabValidation",
    "kept_token_ids",
    "prune_vocabulary",
    "tokenization_changes",
    "validate_pruned_vocabulary",
]

#: config attributes that hold token ids and are renumbered with the vocabulary
_CONFIG_TOKEN_IDS = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id",
                     "unk_token_id", "mask_token_id")

#: folders that pruned SentencePiece tokenizers read their spiece.model from (see prune_vocabulary)
_TOKENIZER_FOLDERS: list[tempfile.TemporaryDirectory] = []

#: SentencePiece's word-boundary mark (Metaspace)
_SPACE = "\u2581"

#: reserved placeholders (``[unused12]``, ``[PAD]``-like names): BertPreTokenizer splits ``[`` and ``]``
#: off as punctuation, so no text reaches them unless they are special or added tokens
_PLACEHOLDER = re.compile(r"^\[[^\]]+\]$")


@dataclass(frozen=True)
class VocabPruneReport:
    """What :func:`prune_vocabulary` kept and what the word-embedding table weighs before and after."""

    vocab_size_before: int
    vocab_size_after: int
    #: how many kept tokens each rule contributed (a token counts under the first rule that keeps it,
    #: in this order: special, texts, characters, top)
    kept_special: int
    kept_from_texts: int
    kept_characters: int
    kept_top: int
    embedding_dim: int
    #: rows of the table before (may exceed the tokenizer's vocabulary: padded tables)
    embedding_rows_before: int
    #: new id -> old id (kept tokens in their original order)
    kept_old_ids: list[int] = field(repr=False)
    #: old special-token ids -> new ones (``{"[PAD]": [0, 0], "[UNK]": [100, 1], ...}``)
    special_ids: dict[str, list[int]] = field(default_factory=dict)
    #: a SentencePiece Unigram vocabulary (else WordPiece)
    sentencepiece: bool = False

    def embedding_bytes(self, bytes_per_value: int = 4, *, after: bool = True) -> int:
        """Bytes of the word-embedding table (4: fp32, 1: int8 weights, scales not counted)."""
        rows = self.vocab_size_after if after else self.embedding_rows_before
        return rows * self.embedding_dim * bytes_per_value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (without the id map) plus the table's MB in fp32 and int8."""
        d = asdict(self)
        d.pop("kept_old_ids")
        mb = 1e6
        d["embedding_mb"] = {
            "fp32_before": self.embedding_bytes(4, after=False) / mb, "fp32_after": self.embedding_bytes(4) / mb,
            "int8_before": self.embedding_bytes(1, after=False) / mb, "int8_after": self.embedding_bytes(1) / mb,
        }
        return d


# ---------------------------------------------------------------------------------------------
# Checks and the tokenizer's JSON
# ---------------------------------------------------------------------------------------------

def _tokenizer_json(tokenizer) -> dict[str, Any]:
    """The fast tokenizer's full description (``tokenizer.json``), checked to be WordPiece or Unigram."""
    if not getattr(tokenizer, "is_fast", False):
        raise ConfigError(
            f"Vocabulary pruning needs a fast tokenizer (a tokenizer.json); got {type(tokenizer).__name__}. "
            "Load it with AutoTokenizer.from_pretrained(folder) (use_fast is the default)."
        )
    tj = json.loads(tokenizer.backend_tokenizer.to_str())
    kind = (tj.get("model") or {}).get("type")
    if kind not in ("WordPiece", "Unigram"):
        what = {"BPE": "BPE (e.g. RoBERTa)"}.get(kind, str(kind))
        raise UnsupportedTokenizerError(
            f"Vocabulary pruning supports WordPiece (BERT, MiniLM) and SentencePiece Unigram (ALBERT) tokenizers; "
            f"this tokenizer is {what}, which is not supported yet. Leave vocabulary pruning out for this model."
        )
    return tj


def _vocab(tj: dict[str, Any]) -> dict[str, int]:
    """token -> id of a WordPiece (a mapping) or Unigram (a list of [piece, score]) vocabulary."""
    vocab = tj["model"]["vocab"]
    if tj["model"]["type"] == "Unigram":
        return {piece: i for i, (piece, _score) in enumerate(vocab)}
    return dict(vocab)


def _character_ids(tj: dict[str, Any]) -> list[int]:
    """Ids of the pieces an unseen word can always fall back to: single characters and their word-piece /
    word-initial forms (and a byte-fallback model's byte pieces)."""
    model = tj["model"]
    if model["type"] == "Unigram":
        byte = re.compile(r"^<0x[0-9A-F]{2}>$") if model.get("byte_fallback") else None
        return [i for i, (t, _) in enumerate(model["vocab"])
                if len(t) == 1 or (len(t) == 2 and t[0] == _SPACE) or (byte is not None and byte.match(t))]
    prefix = model.get("continuing_subword_prefix", "##")
    return [i for t, i in model["vocab"].items() if len(t) == 1 or (t.startswith(prefix) and len(t) == len(prefix) + 1)]


def _frequency_order(tj: dict[str, Any]) -> list[tuple[str, int]]:
    """(token, id), most frequent first: WordPiece lists pieces roughly by frequency; Unigram scores them
    (log probabilities)."""
    model = tj["model"]
    if model["type"] == "Unigram":
        return [(t, i) for i, (t, _) in sorted(enumerate(model["vocab"]), key=lambda x: (-x[1][1], x[0]))]
    return sorted(model["vocab"].items(), key=lambda item: item[1])


def _special_tokens(tokenizer, tj: dict[str, Any]) -> list[str]:
    """Special and added tokens: kept whatever the texts are."""
    names = list(tokenizer.all_special_tokens)
    names += [t["content"] for t in tj.get("added_tokens", [])]
    return list(dict.fromkeys(names))


def _word_embeddings(model):
    get_spec(model)  # refuses architectures edgebert has no spec for
    emb = model.get_input_embeddings()
    out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if out is not None:
        # a masked-LM or generation head scores the vocabulary: its rows would need the same remap
        raise CompressionError(
            f"{type(model).__name__} has an output layer over the vocabulary ({type(out).__name__}); vocabulary "
            "pruning handles classifiers, whose only vocabulary-sized weight is the input embedding."
        )
    import torch

    if not isinstance(emb, torch.nn.Embedding):
        raise CompressionError(f"Expected the word embeddings to be an nn.Embedding, got {type(emb).__name__}.")
    return emb


def _encoder(tokenizer):
    """A copy of the backend tokenizer without padding or truncation (tokenizer.json may enable both)."""
    from tokenizers import Tokenizer

    backend = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
    backend.no_padding()
    backend.no_truncation()
    return backend


def _flatten(texts: Iterable[str | Sequence[str]]) -> list[str]:
    """Texts and sentence pairs as one list of strings (each side of a pair tokenizes on its own)."""
    out: list[str] = []
    for t in texts:
        if isinstance(t, str):
            out.append(t)
        elif isinstance(t, (tuple, list)) and all(isinstance(s, str) for s in t):
            out.extend(t)
        else:
            raise ConfigError(f"Texts must be strings or (text, text) pairs; got {type(t).__name__}: {t!r:.60}.")
    return out


# ---------------------------------------------------------------------------------------------
# Which tokens to keep
# ---------------------------------------------------------------------------------------------

def kept_token_ids(tokenizer, texts: Iterable[str | Sequence[str]], *, keep_top: int = 0,
                   also: Iterable[int] = (), batch_size: int = 1024) -> tuple[list[int], dict[str, int]]:
    """The old ids to keep, ascending, and how many each rule added (see the module docstring).

    ``also``: ids kept whatever the texts are, counted with the special tokens (the model config's
    token ids)."""
    if isinstance(keep_top, bool) or not isinstance(keep_top, int) or keep_top < 0:
        raise ConfigError(f"keep_top must be a whole number >= 0 (0 keeps no extra tokens); got {keep_top!r}.")
    tj = _tokenizer_json(tokenizer)
    vocab = _vocab(tj)
    strings = _flatten(texts)
    if not strings:
        raise ConfigError("No texts given: vocabulary pruning keeps the tokens of the training (and dev) texts, "
                          "so it needs at least one.")

    kept: dict[int, str] = {}  # old id -> rule that kept it (first rule wins)

    def keep(ids: Iterable[int], rule: str) -> None:
        for i in ids:
            kept.setdefault(int(i), rule)

    specials = _special_tokens(tokenizer, tj)
    missing = [t for t in specials if t not in vocab]
    if missing:
        # tokenizer.add_tokens(...) numbers new tokens after the WordPiece vocabulary; renumbering them
        # would need their own block after the kept pieces
        raise ConfigError(f"Tokens {missing} were added to the tokenizer outside its vocabulary; vocabulary "
                          "pruning does not support added tokens yet.")
    keep((vocab[t] for t in specials), "special")
    size = len(vocab)
    keep((i for i in also if 0 <= i < size), "special")

    encoder = _encoder(tokenizer)
    for start in range(0, len(strings), batch_size):
        for enc in encoder.encode_batch(strings[start:start + batch_size], add_special_tokens=False):
            keep(enc.ids, "texts")

    keep(_character_ids(tj), "characters")

    if keep_top:
        added = 0
        for t, i in _frequency_order(tj):
            if added == keep_top:
                break
            if i in kept or _PLACEHOLDER.match(t):
                continue
            kept[i] = "top"
            added += 1

    counts = {rule: sum(1 for r in kept.values() if r == rule) for rule in ("special", "texts", "characters", "top")}
    return sorted(kept), counts


# ---------------------------------------------------------------------------------------------
# The pruned model and tokenizer
# ---------------------------------------------------------------------------------------------

def _remap_post_processor(post: dict[str, Any] | None, old_to_new: dict[int, int]) -> None:
    """Renumber the ids a post-processor writes ([CLS] ... [SEP]), in place."""
    if not post:
        return
    kind = post.get("type")
    if kind == "TemplateProcessing":
        for spec in post.get("special_tokens", {}).values():
            spec["ids"] = [old_to_new[i] for i in spec["ids"]]
    elif kind in ("BertProcessing", "RobertaProcessing"):
        for key in ("sep", "cls"):
            token, i = post[key]
            post[key] = [token, old_to_new[i]]
    elif kind == "Sequence":
        for p in post.get("processors", []):
            _remap_post_processor(p, old_to_new)
    elif kind not in ("ByteLevel",):  # ByteLevel holds no ids
        raise CompressionError(f"Unknown post-processor type {kind!r} in tokenizer.json; cannot renumber its ids.")


def _write_pruned_tokenizer(tokenizer, tj: dict[str, Any], kept: list[int], folder: Path) -> None:
    """Save ``tokenizer`` to ``folder`` with only the ``kept`` tokens, renumbered in order."""
    old_to_new = {old: new for new, old in enumerate(kept)}
    unigram = tj["model"]["type"] == "Unigram"
    id_to_token = {i: t for t, i in _vocab(tj).items()}
    new_vocab = [id_to_token[i] for i in kept]
    if not unigram and any("\n" in t or "\r" in t for t in new_vocab):
        raise CompressionError("A kept token holds a line break; vocab.txt cannot list it.")

    from edgebert.models import save_tokenizer

    save_tokenizer(tokenizer, folder)  # tokenizer_config.json, special_tokens_map.json, spiece.model
    tj = copy.deepcopy(tj)
    if unigram:
        tj["model"]["vocab"] = [tj["model"]["vocab"][i] for i in kept]
        if tj["model"].get("unk_id") is not None:
            tj["model"]["unk_id"] = old_to_new[tj["model"]["unk_id"]]
        if (folder / "spiece.model").is_file():
            _prune_sentencepiece(folder / "spiece.model", kept, [t for t, _ in tj["model"]["vocab"]])
    else:
        tj["model"]["vocab"] = {t: i for i, t in enumerate(new_vocab)}
    for added in tj.get("added_tokens", []):
        added["id"] = old_to_new[added["id"]]
    _remap_post_processor(tj.get("post_processor"), old_to_new)
    if tj.get("padding"):
        tj["padding"]["pad_id"] = old_to_new[tj["padding"]["pad_id"]]
    (folder / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False, indent=2), encoding="utf-8")
    if not unigram:  # the slow tokenizer and the apps' WordPiece ports read ids from vocab.txt: line i is id i
        (folder / "vocab.txt").write_text("".join(t + "\n" for t in new_vocab), encoding="utf-8")

    config_path = folder / "tokenizer_config.json"
    if config_path.is_file():
        cfg = json.loads(config_path.read_text(encoding="utf-8"))
        if isinstance(cfg.get("added_tokens_decoder"), dict):
            cfg["added_tokens_decoder"] = {str(old_to_new[int(k)]): v for k, v in cfg["added_tokens_decoder"].items()}
        config_path.write_text(json.dumps(cfg, ensure_ascii=False, indent=2), encoding="utf-8")
    added_path = folder / "added_tokens.json"
    if added_path.is_file():
        added = json.loads(added_path.read_text(encoding="utf-8"))
        added_path.write_text(json.dumps({t: old_to_new[i] for t, i in added.items()}, ensure_ascii=False),
                              encoding="utf-8")


def _prune_sentencepiece(path: Path, kept: list[int], pieces: list[str]) -> None:
    """Rewrite the SentencePiece model at ``path`` with only the ``kept`` pieces (renumbered in order), its
    special ids following; ``pieces`` are tokenizer.json's kept pieces, which it must list alike."""
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(path.read_bytes())
    if len(proto.pieces) <= max(kept) or [proto.pieces[i].piece for i in kept] != pieces:
        raise CompressionError(f"{path.name} and tokenizer.json list different pieces; they do not belong together.")
    old_to_new = {old: new for new, old in enumerate(kept)}
    spec = proto.trainer_spec
    for name in ("unk_id", "bos_id", "eos_id", "pad_id"):
        old = getattr(spec, name)
        if old >= 0:
            if old not in old_to_new:
                raise CompressionError(f"{path.name}: {name} {old} is not a kept piece.")
            setattr(spec, name, old_to_new[old])
    kept_pieces = [proto.pieces[i] for i in kept]
    new_pieces = [type(p)() for p in kept_pieces]
    for new, old in zip(new_pieces, kept_pieces):
        new.CopyFrom(old)
    del proto.pieces[:]
    proto.pieces.extend(new_pieces)
    spec.vocab_size = len(kept)
    path.write_bytes(proto.SerializeToString())


def _pruned_model(model, kept: list[int]):
    """A copy of ``model`` whose word embeddings hold only the ``kept`` rows, and whose config follows."""
    import torch

    emb = _word_embeddings(model)
    old_to_new = {old: new for new, old in enumerate(kept)}
    for name in _CONFIG_TOKEN_IDS:
        i = getattr(model.config, name, None)
        if isinstance(i, int) and i not in old_to_new:
            raise CompressionError(f"config.{name}={i} is not an id of the tokenizer's vocabulary; the config and "
                                   "the tokenizer do not belong together.")

    # copy everything but the old table (which the new one replaces)
    saved, emb.weight = emb.weight, None
    try:
        new = copy.deepcopy(model)
    finally:
        emb.weight = saved
    index = torch.tensor(kept, dtype=torch.long, device=saved.device)
    # the padding row gets no gradient in further training, as before
    new_pad = old_to_new.get(emb.padding_idx) if emb.padding_idx is not None else None
    table = torch.nn.Embedding(len(kept), saved.shape[1], padding_idx=new_pad, device=saved.device, dtype=saved.dtype)
    with torch.no_grad():
        table.weight.copy_(saved.detach().index_select(0, index))
    table.weight.requires_grad_(saved.requires_grad)
    new.set_input_embeddings(table)
    new.config.vocab_size = len(kept)
    for name in _CONFIG_TOKEN_IDS:
        i = getattr(new.config, name, None)
        if isinstance(i, int):
            setattr(new.config, name, old_to_new[i])
    return new


def prune_vocabulary(model, tokenizer, texts: Iterable[str | Sequence[str]], *, keep_top: int = 0):
    """Keep the vocabulary ``texts`` use (plus special tokens, single characters, ``keep_top`` frequent ones).

    Args:
        model: a BERT or ALBERT sequence classifier (transformers), left unchanged.
        tokenizer: its fast WordPiece tokenizer, left unchanged.
        texts: the training and dev texts (strings, or ``(text, text)`` pairs).
        keep_top: how many of the most frequent other tokens to keep as well (vocabulary order).

    Returns:
        ``(pruned_model, pruned_tokenizer, VocabPruneReport)``. ``pruned_tokenizer.save_pretrained``
        writes tokenizer.json and tokenizer_config.json with the new ids, and vocab.txt where the
        tokenizer's class writes one (transformers 4's BertTokenizerFast); elsewhere
        :func:`edgebert.runtime.wordpiece.write_vocab_txt` writes it from tokenizer.json, as the
        artifact's ``tokenizer/`` folder gets it.
    """
    tj = _tokenizer_json(tokenizer)
    emb = _word_embeddings(model)
    vocab = _vocab(tj)
    size = len(vocab)
    if max(vocab.values()) >= emb.num_embeddings:
        raise ConfigError(
            f"The tokenizer's vocabulary ({size} tokens) is larger than the model's embedding table "
            f"({emb.num_embeddings} rows): they do not belong together. Pass the tokenizer saved with the model."
        )
    # config ids (ALBERT's config says bos 2 / eos 3 whatever the tokenizer) stay valid ids
    config_ids = [i for name in _CONFIG_TOKEN_IDS if isinstance(i := getattr(model.config, name, None), int)]
    kept, counts = kept_token_ids(tokenizer, texts, keep_top=keep_top, also=config_ids)

    new_model = _pruned_model(model, kept)
    # The same class reads the files back, so the returned tokenizer is exactly what a reload gives. A
    # SentencePiece tokenizer keeps reading its spiece.model from that folder (save_pretrained copies it
    # from there), so the folder lives as long as the process (removed at exit).
    folder = tempfile.TemporaryDirectory(prefix="edgebert-vocab-")
    _write_pruned_tokenizer(tokenizer, tj, kept, Path(folder.name))
    new_tokenizer = type(tokenizer).from_pretrained(folder.name)
    if (Path(folder.name) / "spiece.model").is_file():
        _TOKENIZER_FOLDERS.append(folder)
    else:
        folder.cleanup()
    new_vocab = new_tokenizer.get_vocab()
    report = VocabPruneReport(
        vocab_size_before=size, vocab_size_after=len(kept),
        kept_special=counts["special"], kept_from_texts=counts["texts"], kept_characters=counts["characters"],
        kept_top=counts["top"], embedding_dim=int(emb.embedding_dim), embedding_rows_before=int(emb.num_embeddings),
        kept_old_ids=kept,
        special_ids={t: [vocab[t], new_vocab[t]] for t in tokenizer.all_special_tokens},
        sentencepiece=tj["model"]["type"] == "Unigram",
    )
    return new_model, new_tokenizer, report


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenizationChanges:
    """How unseen text tokenizes with the pruned vocabulary, word by word (word occurrences)."""

    texts: int
    words: int
    #: words whose pieces differ (as strings) from the full vocabulary's
    words_changed: int
    #: words holding [UNK] before / after pruning
    words_unk_before: int
    words_unk_after: int
    #: texts whose token sequence differs: only these can be classified differently
    texts_changed: int

    @property
    def changed_share(self) -> float:
        return self.words_changed / self.words if self.words else 0.0

    @property
    def unk_share_before(self) -> float:
        return self.words_unk_before / self.words if self.words else 0.0

    @property
    def unk_share_after(self) -> float:
        return self.words_unk_after / self.words if self.words else 0.0

    @property
    def texts_changed_share(self) -> float:
        return self.texts_changed / self.texts if self.texts else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "changed_share": self.changed_share, "unk_share_before": self.unk_share_before,
                "unk_share_after": self.unk_share_after, "texts_changed_share": self.texts_changed_share}


def _words(enc, unk: str) -> list[tuple[tuple[str, ...], bool]]:
    """(pieces, holds [UNK]) per word of one encoding, in order."""
    groups: dict[int, list[str]] = {}
    for token, word in zip(enc.tokens, enc.word_ids):
        if word is not None:
            groups.setdefault(word, []).append(token)
    return [(tuple(p), unk in p) for _, p in sorted(groups.items())]


def tokenization_changes(tokenizer, pruned_tokenizer, texts: Iterable[str | Sequence[str]],
                         *, batch_size: int = 1024) -> TokenizationChanges:
    """Compare how ``texts`` (e.g. the test split) tokenize with the full and the pruned vocabulary."""
    strings = _flatten(texts)
    old, new = _encoder(tokenizer), _encoder(pruned_tokenizer)
    unk_old, unk_new = tokenizer.unk_token, pruned_tokenizer.unk_token
    words = changed = unk_before = unk_after = texts_changed = 0
    for start in range(0, len(strings), batch_size):
        chunk = strings[start:start + batch_size]
        for a, b in zip(old.encode_batch(chunk, add_special_tokens=False),
                        new.encode_batch(chunk, add_special_tokens=False)):
            wa, wb = _words(a, unk_old), _words(b, unk_new)
            if len(wa) != len(wb):  # the pre-tokenizer does not depend on the vocabulary
                raise CompressionError("The pruned tokenizer splits text into different words; it is not a "
                                       "vocabulary subset of the original.")
            texts_changed += a.tokens != b.tokens
            for (pa, ua), (pb, ub) in zip(wa, wb):
                words += 1
                changed += pa != pb
                unk_before += ua
                unk_after += ub
    return TokenizationChanges(texts=len(strings), words=words, words_changed=changed, words_unk_before=unk_before,
                               words_unk_after=unk_after, texts_changed=texts_changed)


@dataclass(frozen=True)
class VocabValidation:
    """:func:`validate_pruned_vocabulary`'s findings."""

    #: largest |logit difference| on the given (training / dev) texts; 0.0 when the rows are copied exactly
    max_abs_logit_diff: float
    #: texts whose pruned ids were not the renumbered original ids (must be 0)
    id_mismatches: int
    texts: int
    unseen: TokenizationChanges | None = None
    #: accuracy on the unseen texts before / after, when their labels are given
    accuracy_before: float | None = None
    accuracy_after: float | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["unseen"] = self.unseen.to_dict() if self.unseen else None
        return d


def _logits(model, tokenizer, texts: Sequence[str | Sequence[str]], max_length: int, batch_size: int):
    """(input_ids, logits) per batch, tokenized as edgebert's training and evaluation do."""
    import torch

    out = []
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start:start + batch_size])
            pairs = [(t, None) if isinstance(t, str) else tuple(t) for t in chunk]
            first = [a for a, _ in pairs]
            n_pairs = sum(b is not None for _, b in pairs)
            if n_pairs not in (0, len(pairs)):
                raise ConfigError("Texts mix single texts and (text, text) pairs; give one kind.")
            second = [b for _, b in pairs] if n_pairs else None
            batch = tokenizer(first, second, truncation=True, max_length=max_length, padding=True,
                              return_tensors="pt")
            out.append((batch["input_ids"], model(**batch).logits.float()))
    return out


def validate_pruned_vocabulary(model, tokenizer, pruned_model, pruned_tokenizer, report: VocabPruneReport,
                               texts: Sequence[str], *, unseen_texts: Sequence[str] | None = None,
                               unseen_labels: Sequence[int] | None = None, max_length: int = 128,
                               batch_size: int = 32, tolerance: float = 1e-6) -> VocabValidation:
    """Check the pruned model against the original.

    On ``texts`` (those the vocabulary was pruned for): the pruned token ids must be the renumbered
    original ids and the logits must agree within ``tolerance``, else ExportValidationError. On
    ``unseen_texts`` (e.g. test): the share of words whose tokenization changed and of [UNK] words,
    and the accuracy before and after when ``unseen_labels`` (class indices) are given.
    """
    import torch

    texts = list(texts)
    _flatten(texts)  # type check
    if not texts:
        raise ConfigError("No texts given to validate the pruned vocabulary on.")
    old_to_new = torch.full((max(report.kept_old_ids) + 1,), -1, dtype=torch.long)
    old_to_new[torch.tensor(report.kept_old_ids)] = torch.arange(len(report.kept_old_ids))
    worst, mismatches = 0.0, 0
    for (ids_a, la), (ids_b, lb) in zip(_logits(model, tokenizer, texts, max_length, batch_size),
                                        _logits(pruned_model, pruned_tokenizer, texts, max_length, batch_size)):
        in_range = ids_a.clamp(max=len(old_to_new) - 1)
        expected = torch.where(ids_a < len(old_to_new), old_to_new[in_range], torch.full_like(ids_a, -1))
        mismatches += int((expected != ids_b).any(dim=1).sum()) if expected.shape == ids_b.shape else len(ids_a)
        worst = max(worst, float((la - lb).abs().max()))
    if mismatches or worst > tolerance:
        raise ExportValidationError(
            f"Vocabulary pruning changed the model on its own texts: {mismatches} of {len(texts)} texts got other "
            f"token ids, largest logit difference {worst:.3g} (tolerance {tolerance:g})."
        )
    unseen = acc_a = acc_b = None
    if unseen_texts is not None:
        unseen = tokenization_changes(tokenizer, pruned_tokenizer, unseen_texts)
        if unseen_labels is not None:
            test = list(unseen_texts)
            if len(unseen_labels) != len(test):
                raise ConfigError(f"{len(unseen_labels)} labels for {len(test)} unseen texts; give one per text.")
            labels = torch.as_tensor(list(unseen_labels))
            pred_a = torch.cat([lg.argmax(-1) for _, lg in _logits(model, tokenizer, test, max_length, batch_size)])
            pred_b = torch.cat([lg.argmax(-1) for _, lg in
                                _logits(pruned_model, pruned_tokenizer, test, max_length, batch_size)])
            acc_a, acc_b = float((pred_a == labels).float().mean()), float((pred_b == labels).float().mean())
    return VocabValidation(max_abs_logit_diff=worst, id_mismatches=mismatches, texts=len(texts), unseen=unseen,
                           accuracy_before=acc_a, accuracy_after=acc_b)
