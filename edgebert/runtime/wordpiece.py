"""BERT WordPiece tokenisation in plain Python: the tested reference that mobile apps reproduce.

Standard library only (no numpy, ``tokenizers`` or ``transformers``), written step by step in the
order of ``docs/tokenization.md``; the Kotlin and Swift ports in ``examples/android`` and
``examples/ios`` use the same function names, so each step can be read side by side. The output
equals the Hugging Face fast tokenizer of the same folder (``tests/test_wordpiece.py`` checks this
on every SST-2 dev sentence and BANKING77 test text, on edge cases, and code point by code point
for every character whose Unicode category is stable; ``docs/tokenization.md`` lists the
characters where Unicode versions differ).

The pipeline for one text::

    split_on_added_tokens  [CLS], [SEP], ... written in the raw text become their own ids
    normalize              clean_text -> pad_chinese_chars -> strip_accents -> lowercase
    pre_tokenize           split on whitespace, every punctuation character its own word
    wordpiece              greedy longest-match-first, "##" continuation, [UNK] when no match
    encode                 truncate to max_length - 2 pieces, add [CLS] ... [SEP], mask, type ids;
                           a sentence pair: truncate_pair, then [CLS] a [SEP] b [SEP], type ids 1 on b

Scope: BERT-family (WordPiece) tokenizers with a ``BertNormalizer`` and ``BertPreTokenizer``.
Other tokenizers (ALBERT's SentencePiece Unigram, RoBERTa's byte-level BPE) are refused with a
message saying what to use instead.
"""

from __future__ import annotations

import json
import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from edgebert.errors import ConfigError, ModelLoadError, ModelNotFoundError

__all__ = [
    "TokenizerSettings", "WordPieceTokenizer", "clean_text", "is_chinese_char", "is_control",
    "is_punctuation", "is_whitespace", "load_vocab", "lowercase", "normalize", "pad_chinese_chars",
    "pre_tokenize", "read_settings", "split_on_added_tokens", "strip_accents", "truncate_pair", "wordpiece",
    "write_vocab_txt",
]

#: Unicode White_Space property (what Rust's ``char::is_whitespace`` tests), listed in full so the
#: ports need no Unicode database for it. Python's ``str.isspace`` is a different set.
WHITESPACE = frozenset(
    [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, *range(0x2000, 0x200B),
     0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
)

#: general categories clean_text drops: control, format, private use, surrogate. Unassigned code
#: points (Cn) are kept, as Hugging Face's tokenizers keeps them (BERT's Python code dropped them).
CONTROL_CATEGORIES = frozenset(["Cc", "Cf", "Co", "Cs"])

#: punctuation general categories: connector, dash, open, close, initial quote, final quote, other
PUNCTUATION_CATEGORIES = frozenset(["Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po"])

#: CJK Unified Ideographs blocks padded with spaces (inclusive ranges). Hangul, Hiragana and
#: Katakana are not in them. As Hugging Face's tokenizers has it: its sixth range starts at
#: 0x2B920, where BERT's ``_is_chinese_char`` has 0x2B820, so U+2B820..U+2B91F are not padded.
CHINESE_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)

_SPECIAL_DEFAULTS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                     "cls_token": "[CLS]", "mask_token": "[MASK]"}
_DOCS = "docs/mobile.md"


# ---------------------------------------------------------------------------------------------
# Character classes (arguments are code points: apps iterate Unicode scalars, not UTF-16 units
# or grapheme clusters)
# ---------------------------------------------------------------------------------------------

def is_whitespace(cp: int) -> bool:
    """True for the Unicode White_Space code points (tab, newline, CR, space, NBSP, U+3000, ...)."""
    return cp in WHITESPACE


def is_control(cp: int) -> bool:
    """True for characters clean_text drops: categories Cc Cf Co Cs, except tab, LF and CR."""
    if cp in (0x09, 0x0A, 0x0D):
        return False  # control characters by category, but treated as whitespace
    return unicodedata.category(chr(cp)) in CONTROL_CATEGORIES


def is_punctuation(cp: int) -> bool:
    """True for ASCII symbols and punctuation (33-47, 58-64, 91-96, 123-126) and categories P*."""
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True  # $ + < = > ^ ` | ~ are symbols (Sc, Sm, Sk), split all the same
    return unicodedata.category(chr(cp)) in PUNCTUATION_CATEGORIES


def is_chinese_char(cp: int) -> bool:
    """True for code points in :data:`CHINESE_RANGES`."""
    if cp < 0x3400:
        return False  # below the lowest range: most text stops here
    return any(lo <= cp <= hi for lo, hi in CHINESE_RANGES)


# ---------------------------------------------------------------------------------------------
# Settings and vocabulary
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TokenizerSettings:
    """What a BERT tokenizer folder says about tokenisation (see :func:`read_settings`)."""

    clean_text: bool = True
    handle_chinese_chars: bool = True
    strip_accents: bool = True
    lowercase: bool = True
    unk_token: str = "[UNK]"
    cls_token: str = "[CLS]"
    sep_token: str = "[SEP]"
    continuing_subword_prefix: str = "##"
    max_input_chars_per_word: int = 100
    #: tokens matched verbatim in the raw text before normalisation ([PAD], [UNK], [CLS], ...)
    added_tokens: tuple[str, ...] = field(default_factory=tuple)
    #: largest sequence length the model accepts (tokenizer_config.json); None when not stated
    model_max_length: int | None = None
    #: whether a sentence pair is BERT's ``[CLS] a [SEP] b [SEP]`` with type ids 1 on ``b [SEP]`` (False: the
    #: tokenizer's pair template is another, which the reference does not reproduce)
    bert_pairs: bool = True


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelLoadError(f"Cannot read '{path}': {exc}") from exc


def _token_content(value) -> str | None:
    # tokenizer_config.json writes special tokens as strings or as AddedToken dicts
    if isinstance(value, dict):
        return value.get("content")
    return value


def _bert_pair_template(post: dict | None, cls: str | None, sep: str | None) -> bool:
    """Whether the post-processor joins a pair as ``[CLS]:0 $A:0 [SEP]:0 $B:1 [SEP]:1`` (BertProcessing
    always does; a TemplateProcessing says so in its ``pair`` list)."""
    if not post or post.get("type") != "TemplateProcessing":
        return True
    want = [("SpecialToken", cls, 0), ("Sequence", "A", 0), ("SpecialToken", sep, 0), ("Sequence", "B", 1),
            ("SpecialToken", sep, 1)]
    got = [(kind, body.get("id"), body.get("type_id", 0)) for piece in post.get("pair") or []
           for kind, body in piece.items()]
    return got == want


def _template_specials(post: dict | None) -> tuple[str | None, str | None]:
    """(cls, sep) from a BertProcessing or a ``[CLS] $A [SEP]`` TemplateProcessing post-processor."""
    if not post:
        return None, None
    if post.get("type") == "BertProcessing":
        return post["cls"][0], post["sep"][0]
    if post.get("type") == "TemplateProcessing":
        single = post.get("single") or []
        kinds = [next(iter(piece)) for piece in single]
        if kinds == ["SpecialToken", "Sequence", "SpecialToken"] and \
                all(next(iter(p.values())).get("type_id", 0) == 0 for p in single):
            return single[0]["SpecialToken"]["id"], single[2]["SpecialToken"]["id"]
    raise ModelLoadError(
        f"The tokenizer's post-processor is not BERT's '[CLS] text [SEP]' ({post.get('type')}); "
        f"the WordPiece reference covers BERT-family tokenizers only (see {_DOCS})."
    )


def _check_wordpiece(tok: dict, folder: Path) -> None:
    model_type = (tok.get("model") or {}).get("type")
    if model_type != "WordPiece":
        hint = ""
        if model_type == "Unigram":
            hint = (" This is a SentencePiece Unigram tokenizer (ALBERT, T5, XLM-R): on a device, run it "
                    "with the sentencepiece library or ONNX Runtime Extensions' SentencepieceTokenizer.")
        raise ModelLoadError(
            f"'{folder}' holds a {model_type} tokenizer, not WordPiece: the hand-written mobile tokenizer "
            f"covers BERT-family (WordPiece) tokenizers only.{hint} See {_DOCS}."
        )
    for part, expected in (("normalizer", "BertNormalizer"), ("pre_tokenizer", "BertPreTokenizer")):
        got = (tok.get(part) or {}).get("type")
        if got != expected:
            raise ModelLoadError(
                f"'{folder}/tokenizer.json' has {part} {got}, not {expected}: the WordPiece reference "
                f"reproduces BERT's tokenisation only (see {_DOCS})."
            )


def read_settings(folder: str | os.PathLike) -> TokenizerSettings:
    """Read a tokenizer folder's settings the way the Hugging Face tokenizer for it does.

    With ``tokenizer.json`` (what ``AutoTokenizer`` loads as a fast tokenizer): the normalizer's
    ``clean_text``, ``handle_chinese_chars``, ``lowercase`` and ``strip_accents`` (``null`` means
    "same as lowercase"), the WordPiece model's ``unk_token``, ``continuing_subword_prefix`` and
    ``max_input_chars_per_word``, ``[CLS]`` / ``[SEP]`` from the post-processor and the
    ``added_tokens``. Without it, ``tokenizer_config.json`` as BERT's Python tokenizer reads it
    (``do_lower_case``, ``strip_accents``, ``tokenize_chinese_chars``, special tokens).
    ``model_max_length`` comes from ``tokenizer_config.json`` in both cases.
    """
    folder = Path(folder)
    config_path = folder / "tokenizer_config.json"
    config = _read_json(config_path) if config_path.is_file() else {}
    max_len = config.get("model_max_length")
    # transformers writes a huge sentinel (int(1e30)) for "no limit"
    model_max_length = int(max_len) if isinstance(max_len, (int, float)) and max_len < 1e9 else None

    tok_path = folder / "tokenizer.json"
    if tok_path.is_file():
        tok = _read_json(tok_path)
        _check_wordpiece(tok, folder)
        norm, model = tok["normalizer"], tok["model"]
        lowercase = bool(norm.get("lowercase", True))
        strip = norm.get("strip_accents")
        cls, sep = _template_specials(tok.get("post_processor"))
        added = []
        for t in tok.get("added_tokens") or []:
            if t.get("normalized") or t.get("lstrip") or t.get("rstrip") or t.get("single_word"):
                raise ModelLoadError(
                    f"'{tok_path}' has added token {t.get('content')!r} with normalized / lstrip / rstrip "
                    f"/ single_word matching, which the mobile tokenizer spec does not cover (see {_DOCS})."
                )
            if model.get("vocab", {}).get(t["content"]) != t.get("id"):
                raise ModelLoadError(
                    f"'{tok_path}': added token {t['content']!r} has id {t.get('id')}, not its vocabulary id; "
                    f"apps read ids from vocab.txt, so the two must agree."
                )
            added.append(t["content"])
        return TokenizerSettings(
            clean_text=bool(norm.get("clean_text", True)),
            handle_chinese_chars=bool(norm.get("handle_chinese_chars", True)),
            strip_accents=lowercase if strip is None else bool(strip),
            lowercase=lowercase,
            unk_token=model.get("unk_token", "[UNK]"),
            cls_token=cls or _SPECIAL_DEFAULTS["cls_token"],
            sep_token=sep or _SPECIAL_DEFAULTS["sep_token"],
            continuing_subword_prefix=model.get("continuing_subword_prefix") or "##",
            max_input_chars_per_word=int(model.get("max_input_chars_per_word", 100)),
            added_tokens=tuple(added),
            model_max_length=model_max_length,
            bert_pairs=_bert_pair_template(tok.get("post_processor"), cls, sep),
        )

    if not (folder / "vocab.txt").is_file():
        raise ModelNotFoundError(f"'{folder}' has neither tokenizer.json nor vocab.txt: not a BERT tokenizer folder.")
    if config.get("tokenizer_class") not in (None, "BertTokenizer", "BertTokenizerFast"):
        raise ModelLoadError(
            f"'{config_path}' names {config['tokenizer_class']}; the WordPiece reference covers BERT's "
            f"tokenizer only (see {_DOCS})."
        )
    lowercase = bool(config.get("do_lower_case", True))
    strip = config.get("strip_accents")
    specials = {k: _token_content(config.get(k)) or v for k, v in _SPECIAL_DEFAULTS.items()}
    return TokenizerSettings(
        handle_chinese_chars=bool(config.get("tokenize_chinese_chars", True)),
        strip_accents=lowercase if strip is None else bool(strip),
        lowercase=lowercase,
        unk_token=specials["unk_token"],
        cls_token=specials["cls_token"],
        sep_token=specials["sep_token"],
        added_tokens=tuple(dict.fromkeys(specials.values())),
        model_max_length=model_max_length,
    )


def load_vocab(folder: str | os.PathLike) -> dict[str, int]:
    """Token -> id: line ``i`` (0-based) of ``vocab.txt`` is id ``i``; else ``tokenizer.json``'s ``model.vocab``.

    Lines are split on ``\\n`` only, with a trailing ``\\r`` removed (a token may hold other
    whitespace, e.g. U+00A0). When both files exist they must agree, since apps read ``vocab.txt``.
    """
    folder = Path(folder)
    txt, tok_path = folder / "vocab.txt", folder / "tokenizer.json"
    from_json = None
    if tok_path.is_file():
        from_json = (_read_json(tok_path).get("model") or {}).get("vocab")
    if not txt.is_file():
        if from_json is None:
            raise ModelNotFoundError(f"'{folder}' has neither vocab.txt nor a tokenizer.json vocabulary.")
        return dict(from_json)
    lines = txt.read_text(encoding="utf-8").split("\n")
    if lines and lines[-1] == "":
        lines.pop()  # the file's final newline
    vocab: dict[str, int] = {}
    for i, line in enumerate(lines):
        vocab.setdefault(line.removesuffix("\r"), i)
    if from_json is not None and from_json != vocab:
        raise ModelLoadError(
            f"'{txt}' and '{tok_path}' hold different vocabularies: apps read vocab.txt, so it must be "
            f"tokenizer.json's model.vocab written one token per line in id order."
        )
    return vocab


def write_vocab_txt(folder: str | os.PathLike) -> Path:
    """Give a WordPiece tokenizer folder the ``vocab.txt`` apps read; return its path.

    ``save_pretrained`` writes ``vocab.txt`` only for tokenizers loaded from one; a tokenizer built
    in code has ``tokenizer.json`` alone. Its ``model.vocab`` is then written one token per line in
    id order. An existing ``vocab.txt`` is checked against ``tokenizer.json`` instead.
    """
    folder = Path(folder)
    txt, tok_path = folder / "vocab.txt", folder / "tokenizer.json"
    if txt.is_file():
        load_vocab(folder)  # raises when the two disagree
        return txt
    if not tok_path.is_file():
        raise ModelNotFoundError(f"'{folder}' has no tokenizer.json to write vocab.txt from.")
    tok = _read_json(tok_path)
    _check_wordpiece(tok, folder)
    by_id = sorted(tok["model"]["vocab"].items(), key=lambda item: item[1])
    if [i for _, i in by_id] != list(range(len(by_id))):
        raise ModelLoadError(f"'{tok_path}': vocabulary ids are not 0..{len(by_id) - 1}; no vocab.txt can list them.")
    if any("\n" in t or t.endswith("\r") for t, _ in by_id):
        raise ModelLoadError(f"'{tok_path}': a token holds a line break; vocab.txt cannot list it.")
    txt.write_text("".join(t + "\n" for t, _ in by_id), encoding="utf-8")
    return txt


# ---------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------

def split_on_added_tokens(text: str, added_tokens: tuple[str, ...]) -> list[tuple[str, bool]]:
    """Cut ``text`` at verbatim occurrences of the added tokens: [(piece, is_added_token), ...].

    Repeatedly takes the earliest occurrence of any added token, the longest one when several
    start there (leftmost-longest). Matching is case-sensitive and on the raw text: "[SEP]" is
    one token, "[sep]" is ordinary text.
    """
    pieces: list[tuple[str, bool]] = []
    start = 0
    while True:
        best_pos, best = -1, ""
        for token in added_tokens:
            pos = text.find(token, start) if token else -1
            if pos >= 0 and (best_pos < 0 or pos < best_pos or (pos == best_pos and len(token) > len(best))):
                best_pos, best = pos, token
        if best_pos < 0:
            break
        if best_pos > start:
            pieces.append((text[start:best_pos], False))
        pieces.append((best, True))
        start = best_pos + len(best)
    if start < len(text):
        pieces.append((text[start:], False))
    return pieces


def clean_text(text: str) -> str:
    """Drop U+0000, U+FFFD and control characters; turn every whitespace character into a space."""
    out = []
    for ch in text:
        cp = ord(ch)
        if cp == 0 or cp == 0xFFFD or is_control(cp):
            continue
        out.append(" " if is_whitespace(cp) else ch)
    return "".join(out)


def pad_chinese_chars(text: str) -> str:
    """Put a space on both sides of every CJK ideograph, so each becomes a word of its own."""
    return "".join(f" {ch} " if is_chinese_char(ord(ch)) else ch for ch in text)


def strip_accents(text: str) -> str:
    """Canonical decomposition (NFD), then drop the non-spacing marks (category Mn)."""
    return "".join(ch for ch in unicodedata.normalize("NFD", text) if unicodedata.category(ch) != "Mn")


def lowercase(text: str) -> str:
    """Full Unicode lower-case mapping, one code point at a time (no context rules: Σ -> σ even
    at a word's end, where ``str.lower`` would give ς)."""
    return "".join(ch.lower() for ch in text)


def normalize(text: str, settings: TokenizerSettings) -> str:
    """BERT's normaliser, in Hugging Face's order: clean, pad CJK, strip accents, lower-case."""
    if settings.clean_text:
        text = clean_text(text)
    if settings.handle_chinese_chars:
        text = pad_chinese_chars(text)
    if settings.strip_accents:
        text = strip_accents(text)
    if settings.lowercase:
        text = lowercase(text)
    return text


def pre_tokenize(text: str) -> list[str]:
    """Split on whitespace (dropped) and punctuation (kept, one character per word)."""
    words: list[str] = []
    current: list[str] = []
    for ch in text:
        cp = ord(ch)
        if is_whitespace(cp) or is_punctuation(cp):
            if current:
                words.append("".join(current))
                current = []
            if not is_whitespace(cp):
                words.append(ch)
        else:
            current.append(ch)
    if current:
        words.append("".join(current))
    return words


def wordpiece(word: str, vocab: dict[str, int], settings: TokenizerSettings) -> list[str]:
    """Greedy longest-match-first: the longest vocabulary entry that starts the rest of the word,
    "##"-prefixed after the first piece. A word longer than ``max_input_chars_per_word`` code
    points, or with a rest that no entry starts, becomes a single unknown token."""
    if len(word) > settings.max_input_chars_per_word:
        return [settings.unk_token]
    pieces: list[str] = []
    start = 0
    while start < len(word):
        end = len(word)
        piece = None
        while end > start:
            candidate = word[start:end]
            if start > 0:
                candidate = settings.continuing_subword_prefix + candidate
            if candidate in vocab:
                piece = candidate
                break
            end -= 1
        if piece is None:
            return [settings.unk_token]
        pieces.append(piece)
        start = end
    return pieces


def truncate_pair(n_a: int, n_b: int, budget: int) -> tuple[int, int]:
    """How many pieces of each sentence of a pair to keep when together they may have ``budget``
    (``max_length - 3``: [CLS] and two [SEP]), as Hugging Face's ``longest_first`` truncation keeps them.

    Nothing is cut when both fit. Otherwise the shorter sentence is kept whole when it fits in half
    the budget and the longer one gets the rest; when both are longer than half, each gets half,
    the second sentence the odd piece (``budget // 2`` and ``budget // 2 + budget % 2``). Pieces are
    always cut from the end of a sentence.
    """
    if n_a + n_b <= budget:
        return n_a, n_b
    swap = n_a > n_b
    short, long = (n_b, n_a) if swap else (n_a, n_b)
    long = short if short > budget else max(short, budget - short)
    if short + long > budget:
        short = budget // 2
        long = short + budget % 2
    return (long, short) if swap else (short, long)


class WordPieceTokenizer:
    """A BERT tokenizer folder's tokenisation, for single texts and sentence pairs; see the module docstring."""

    def __init__(self, vocab: dict[str, int], settings: TokenizerSettings):
        self.vocab = vocab
        self.settings = settings
        for role in ("unk_token", "cls_token", "sep_token"):
            token = getattr(settings, role)
            if token not in vocab:
                raise ModelLoadError(f"The {role} {token!r} is not in the vocabulary.")
        missing = [t for t in settings.added_tokens if t not in vocab]
        if missing:
            raise ModelLoadError(f"Added tokens {missing} are not in vocab.txt, which apps read ids from.")
        self.unk_id = vocab[settings.unk_token]
        self.cls_id = vocab[settings.cls_token]
        self.sep_id = vocab[settings.sep_token]

    @classmethod
    def from_folder(cls, path: str | os.PathLike) -> "WordPieceTokenizer":
        """Load ``vocab.txt`` (or ``tokenizer.json``'s vocabulary) and the folder's settings."""
        path = Path(path)
        if not path.is_dir():
            raise ModelNotFoundError(f"Tokenizer folder '{path}' does not exist.")
        settings = read_settings(path)
        return cls(load_vocab(path), settings)

    def tokenize(self, text: str) -> list[str]:
        """The token strings of ``text``, without [CLS] / [SEP] and without truncation."""
        tokens: list[str] = []
        for piece, is_added in split_on_added_tokens(text, self.settings.added_tokens):
            if is_added:
                tokens.append(piece)
                continue
            for word in pre_tokenize(normalize(piece, self.settings)):
                tokens.extend(wordpiece(word, self.vocab, self.settings))
        return tokens

    def encode(self, text: str, max_length: int | None = 128, text_pair: str | None = None) -> dict[str, list[int]]:
        """``[CLS] pieces [SEP]`` as ids, truncated to ``max_length`` tokens in all; with ``text_pair``
        (a sentence-pair model) ``[CLS] a [SEP] b [SEP]``, the two truncated by :func:`truncate_pair`.

        ``max_length`` None means the folder's ``model_max_length``. Returns
        ``{"input_ids", "attention_mask" (all 1), "token_type_ids" (0, and 1 on ``b [SEP]``)}``, lists
        of the same length (no padding); feed each as an int64 tensor of shape (1, len).
        """
        specials = 2 if text_pair is None else 3
        if max_length is None:
            max_length = self.settings.model_max_length
            if max_length is None:
                raise ConfigError("max_length is None and the tokenizer folder states no model_max_length.")
        if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < specials:
            need = "[CLS] and [SEP] need 2" if text_pair is None else "a pair's [CLS] and two [SEP] need 3"
            raise ConfigError(f"max_length must be an integer >= {specials} ({need}); got {max_length!r}.")
        if text_pair is None:
            pieces = self.tokenize(text)[: max_length - 2]
            input_ids = [self.cls_id] + [self.vocab[p] for p in pieces] + [self.sep_id]
            return {
                "input_ids": input_ids,
                "attention_mask": [1] * len(input_ids),
                "token_type_ids": [0] * len(input_ids),
            }
        if not self.settings.bert_pairs:
            raise ModelLoadError("This tokenizer joins sentence pairs with another template than BERT's "
                                 "'[CLS] a [SEP] b [SEP]' (type ids 1 on b); the WordPiece reference does not "
                                 f"reproduce it (see {_DOCS}).")
        a, b = self.tokenize(text), self.tokenize(text_pair)
        keep_a, keep_b = truncate_pair(len(a), len(b), max_length - 3)
        first = [self.cls_id] + [self.vocab[p] for p in a[:keep_a]] + [self.sep_id]
        second = [self.vocab[p] for p in b[:keep_b]] + [self.sep_id]
        return {
            "input_ids": first + second,
            "attention_mask": [1] * (len(first) + len(second)),
            "token_type_ids": [0] * len(first) + [1] * len(second),
        }
