"""Texts to classify, read from a file: ``.txt`` (one per line), ``.csv`` / ``.tsv`` (a text
column), ``.jsonl`` (a text field per object). Standard library only.

Unlike training data (:func:`edgebert.data.load_dataset`) these files need no label column, and a
CSV may hold the text column alone. The text column is ``text_column`` when given, else the first
of :data:`edgebert.data.files.TEXT_COLUMNS` present (``text``, ``sentence``, ``utterance``, ...),
else the only column. For a sentence-pair model (:func:`read_inputs` with ``pairs=True``) the two
columns are ``text_column`` / ``text_pair_column`` when given, else the first pair of
:data:`edgebert.data.files.PAIR_COLUMNS` present (``sentence1`` / ``sentence2``, ``question`` /
``sentence``, ...). An empty text is refused (blank ``.txt`` lines are skipped). Errors name the
file and line (:class:`~edgebert.errors.DataError`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from edgebert.data.files import PAIR_COLUMNS, TEXT_COLUMNS, read_text
from edgebert.errors import DataError, DatasetNotFoundError
from edgebert.runtime.classifier import EMPTY_TEXT, is_blank

__all__ = ["INPUT_EXTENSIONS", "read_inputs", "read_texts"]

INPUT_EXTENSIONS = (".txt", ".csv", ".tsv", ".jsonl", ".json")


def _pick_column(columns: list[str], wanted: str | None, path: str) -> str:
    by_lower = {c.lower(): c for c in columns}
    if wanted is not None:
        if wanted in columns or wanted.lower() in by_lower:
            return wanted if wanted in columns else by_lower[wanted.lower()]
        raise DataError(f"no column {wanted!r}; columns found: {', '.join(map(repr, columns))}", path=path)
    for name in TEXT_COLUMNS:
        if name in by_lower:
            return by_lower[name]
    if len(columns) == 1:
        return columns[0]
    raise DataError(f"no text column (looked for {', '.join(TEXT_COLUMNS)}); columns found: "
                    f"{', '.join(map(repr, columns))}. Name it with --text-column NAME", path=path)


def _pick_pair(columns: list[str], text_column: str | None, text_pair_column: str | None,
               path: str) -> tuple[str, str]:
    """The (text, text pair) columns of a sentence-pair input file."""
    by_lower = {c.lower(): c for c in columns}
    if text_column is None and text_pair_column is None:
        for first, second in PAIR_COLUMNS:
            if first in by_lower and second in by_lower:
                return by_lower[first], by_lower[second]
        known = ", ".join(f"{a}/{b}" for a, b in PAIR_COLUMNS)
        raise DataError(f"the model classifies sentence pairs and the file has no pair of text columns (looked "
                        f"for {known}); columns found: {', '.join(map(repr, columns))}. Name them with "
                        "--text-column FIRST --text-pair-column SECOND", path=path)
    if text_pair_column is None:  # the partner of a known first column (sentence1 -> sentence2)
        first = _pick_column(columns, text_column, path)
        partner = next((b for a, b in PAIR_COLUMNS if a == first.lower() and b in by_lower), None)
        if partner is None:
            raise DataError(f"the model classifies sentence pairs: name the second text column with "
                            f"--text-pair-column NAME; columns found: {', '.join(map(repr, columns))}", path=path)
        return first, by_lower[partner]
    second = _pick_column(columns, text_pair_column, path)
    if text_column is None:
        first = next((by_lower[a] for a, b in PAIR_COLUMNS if b == second.lower() and a in by_lower), None)
        first = first or _pick_column([c for c in columns if c != second], None, path)
    else:
        first = _pick_column(columns, text_column, path)
    if first == second:
        raise DataError(f"column {first!r} cannot be both the text and the text pair column", path=path)
    return first, second


def _cell(value, column: str, path: str, line: int) -> str:
    if value is None or isinstance(value, (dict, list, bool)):
        found = "nothing" if value is None else type(value).__name__
        raise DataError(f"the {column!r} field must be a string, found {found}", path=path, line=line)
    return _filled(str(value), column, path, line)


def _filled(text: str, column: str, path: str, line: int) -> str:
    if is_blank(text):
        raise DataError(f"the {column!r} field {EMPTY_TEXT}; fill it or remove the line", path=path, line=line)
    return text


def read_texts(path: str | os.PathLike, *, text_column: str | None = None) -> list[str]:
    """The texts of ``path`` in file order (blank ``.txt`` lines skipped; other empty texts refused)."""
    return read_inputs(path, text_column=text_column)[0]


def read_inputs(path: str | os.PathLike, *, text_column: str | None = None, text_pair_column: str | None = None,
                pairs: bool = False) -> tuple[list[str], list[str] | None]:
    """``(texts, text pairs)`` of ``path`` in file order; text pairs are None unless ``pairs`` (a
    sentence-pair model: two text columns, see the module doc) or ``text_pair_column`` is given.
    Blank ``.txt`` lines are skipped; an empty text elsewhere is a DataError naming its line."""
    pairs = pairs or text_pair_column is not None
    p = Path(path).expanduser()
    if not p.is_file():
        raise DatasetNotFoundError("input file not found" if not p.exists() else "input must be a file",
                                   path=str(p))
    ext = p.suffix.lower()
    if ext not in INPUT_EXTENSIONS:
        raise DataError(f"unsupported input file type ({p.suffix or 'no extension'}); supported: "
                        f"{', '.join(INPUT_EXTENSIONS)}", path=str(p))
    text = read_text(p)
    if ext == ".txt":
        if pairs:
            raise DataError("a sentence pair (two text columns) needs a .csv / .tsv / .jsonl input, not .txt",
                            path=str(p))
        if text_column is not None:
            raise DataError("--text-column applies to .csv / .tsv / .jsonl inputs, not .txt", path=str(p))
        return [line.strip() for line in text.splitlines() if line.strip()], None
    if ext in (".jsonl", ".json"):
        return _jsonl(text, str(p), text_column, text_pair_column, pairs)
    return _delimited(text, str(p), text_column, text_pair_column, pairs, "\t" if ext == ".tsv" else ",")


def _columns(columns: list[str], text_column, text_pair_column, pairs: bool, path: str) -> list[str]:
    """The column(s) to read: [text] or [text, text pair]."""
    if pairs:
        return list(_pick_pair(columns, text_column, text_pair_column, path))
    return [_pick_column(columns, text_column, path)]


def _jsonl(text: str, path: str, text_column: str | None, text_pair_column: str | None,
           pairs: bool) -> tuple[list[str], list[str] | None]:
    out: list[list[str]] = []
    wanted = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise DataError(f"malformed JSON ({exc}); expected one JSON object per line", path=path,
                            line=lineno) from None
        if not isinstance(obj, dict):
            raise DataError(f"expected a JSON object per line, found {type(obj).__name__}", path=path, line=lineno)
        if wanted is None:
            wanted = _columns(list(obj), text_column, text_pair_column, pairs, path)
        row = []
        for column in wanted:
            if column not in obj:
                raise DataError(f"the object has no {column!r} field", path=path, line=lineno)
            row.append(_cell(obj[column], column, path, lineno))
        out.append(row)
    return _split_rows(out, pairs)


def _split_rows(rows: list[list[str]], pairs: bool) -> tuple[list[str], list[str] | None]:
    return [r[0] for r in rows], [r[1] for r in rows] if pairs else None


def _delimited(text: str, path: str, text_column: str | None, text_pair_column: str | None, pairs: bool,
               delimiter: str) -> tuple[list[str], list[str] | None]:
    # TSV files such as SST-2 hold bare double quotes inside the texts: no quoting there.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                        quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
    out: list[list[str]] = []
    header: list[str] | None = None
    wanted: list[str] = []
    try:
        for fields in reader:
            if not fields:
                continue
            if header is None:
                header = [f.strip() for f in fields]
                wanted = _columns(header, text_column, text_pair_column, pairs, path)
                continue
            if len(fields) != len(header):
                raise DataError(f"expected {len(header)} fields ({', '.join(header)}), found {len(fields)}",
                                path=path, line=reader.line_num)
            out.append([_filled(fields[header.index(c)], c, path, reader.line_num) for c in wanted])
    except csv.Error as exc:
        raise DataError(f"malformed {'TSV' if delimiter == chr(9) else 'CSV'} ({exc})", path=path,
                        line=reader.line_num) from exc
    if header is None:
        raise DataError("file is empty: it needs a header line naming the text column", path=path)
    return _split_rows(out, pairs)
