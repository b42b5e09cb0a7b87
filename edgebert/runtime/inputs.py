"""Texts to classify, read from a file: ``.txt`` (one per line), ``.csv`` / ``.tsv`` (a text
column), ``.jsonl`` (a text field per object). Standard library only.

Unlike training data (:func:`edgebert.data.load_dataset`) these files need no label column, and a
CSV may hold the text column alone. The text column is ``text_column`` when given, else the first
of :data:`edgebert.data.files.TEXT_COLUMNS` present (``text``, ``sentence``, ``utterance``, ...),
else the only column. Errors name the file and line (:class:`~edgebert.errors.DataError`).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

from edgebert.data.files import TEXT_COLUMNS, read_text
from edgebert.errors import DataError, DatasetNotFoundError

__all__ = ["INPUT_EXTENSIONS", "read_texts"]

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


def _cell(value, column: str, path: str, line: int) -> str:
    if value is None or isinstance(value, (dict, list, bool)):
        found = "nothing" if value is None else type(value).__name__
        raise DataError(f"the {column!r} field must be a string, found {found}", path=path, line=line)
    return str(value)


def read_texts(path: str | os.PathLike, *, text_column: str | None = None) -> list[str]:
    """The texts of ``path`` in file order (blank ``.txt`` lines skipped; other empty texts kept)."""
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
        if text_column is not None:
            raise DataError("--text-column applies to .csv / .tsv / .jsonl inputs, not .txt", path=str(p))
        return [line.strip() for line in text.splitlines() if line.strip()]
    if ext in (".jsonl", ".json"):
        return _jsonl(text, str(p), text_column)
    return _delimited(text, str(p), text_column, "\t" if ext == ".tsv" else ",")


def _jsonl(text: str, path: str, text_column: str | None) -> list[str]:
    out: list[str] = []
    column = None
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
        if column is None:
            column = _pick_column(list(obj), text_column, path)
        if column not in obj:
            raise DataError(f"the object has no {column!r} field", path=path, line=lineno)
        out.append(_cell(obj[column], column, path, lineno))
    return out


def _delimited(text: str, path: str, text_column: str | None, delimiter: str) -> list[str]:
    # TSV files such as SST-2 hold bare double quotes inside the texts: no quoting there.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                        quoting=csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL)
    out: list[str] = []
    header: list[str] | None = None
    index = 0
    try:
        for fields in reader:
            if not fields:
                continue
            if header is None:
                header = [f.strip() for f in fields]
                index = header.index(_pick_column(header, text_column, path))
                continue
            if len(fields) != len(header):
                raise DataError(f"expected {len(header)} fields ({', '.join(header)}), found {len(fields)}",
                                path=path, line=reader.line_num)
            out.append(fields[index])
    except csv.Error as exc:
        raise DataError(f"malformed {'TSV' if delimiter == chr(9) else 'CSV'} ({exc})", path=path,
                        line=reader.line_num) from exc
    if header is None:
        raise DataError("file is empty: it needs a header line naming the text column", path=path)
    return out
