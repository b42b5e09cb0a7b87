"""Reading CSV, TSV and JSON Lines files into rows, with errors that name the file and line.

Line numbers are 1-based and count the header line, as an editor shows them. A CSV row whose quoted
field spans several lines is reported at the line where the row starts.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgebert.errors import DataError

#: file extensions :func:`read_table` understands (``.json`` must hold JSON Lines too)
SUPPORTED_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".json")

#: candidate column names, first match wins (compared case-insensitively)
TEXT_COLUMNS = ("text", "sentence", "utterance", "query", "review", "content")
LABEL_COLUMNS = ("label", "labels", "category", "intent", "class", "target")
#: (first text, second text) column pairs that mark a sentence-pair task
PAIR_COLUMNS = (("sentence1", "sentence2"), ("question1", "question2"), ("premise", "hypothesis"),
                ("question", "sentence"))

_INT_RE = re.compile(r"[+-]?[0-9]+")

# Long texts (whole reviews) can exceed the csv module's default 128 KiB field limit.
_FIELD_LIMIT = min(sys.maxsize, 2**31 - 1)


def supported_extensions_text() -> str:
    return ", ".join(SUPPORTED_EXTENSIONS) + " (.json must hold JSON Lines: one object per line)"


@dataclass
class Table:
    """The rows of one file: column names in file order and ``(line, row)`` pairs."""

    path: str
    columns: list[str]
    rows: list[tuple[int, dict[str, Any]]]


@dataclass
class RawSplit:
    """Rows of one split after column selection; labels are still the raw strings."""

    source: str  # file path or hub id, for messages and manifests
    texts: list[str]
    labels: list[str]
    text_pairs: list[str] | None
    lines: list[int] | None  # line of each row in ``source`` (None for hub data)

    def where(self, i: int) -> tuple[str, int | None]:
        return self.source, (self.lines[i] if self.lines is not None else None)


def check_extension(path: Path) -> str:
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        shown = f"'{path.suffix}'" if path.suffix else "no extension"
        raise DataError(
            f"unsupported file type ({shown}); supported: {supported_extensions_text()}", path=str(path)
        )
    return ext


def read_text(path: Path) -> str:
    """The whole file decoded as UTF-8 (a UTF-8 byte-order mark is dropped)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read file: {e.strerror or e}", path=str(path)) from e
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise DataError(
            f"byte 0x{data[e.start]:02x} at column {column} is not valid UTF-8 ({e.reason}). "
            "Save the file as UTF-8 (e.g. re-export it, or convert it with "
            "`iconv -f latin1 -t utf-8`).",
            path=str(path),
            line=line,
        ) from e


def read_table(path: Path) -> Table:
    """Read a .csv/.tsv/.jsonl/.json file into a :class:`Table` (raises :class:`DataError`)."""
    ext = check_extension(path)
    text = read_text(path)
    if not text.strip():
        raise DataError("file is empty: it needs a header line and at least one data row"
                        if ext in (".csv", ".tsv") else "file is empty: it needs one JSON object per line",
                        path=str(path))
    if ext in (".csv", ".tsv"):
        return _read_delimited(path, text, delimiter="\t" if ext == ".tsv" else ",")
    return _read_json_lines(path, text)


def _read_delimited(path: Path, text: str, delimiter: str) -> Table:
    tsv = delimiter == "\t"
    csv.field_size_limit(max(csv.field_size_limit(), _FIELD_LIMIT))
    # TSV files (e.g. SST-2) contain bare double quotes that are part of the text: no quoting.
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter,
                        quoting=csv.QUOTE_NONE if tsv else csv.QUOTE_MINIMAL)
    kind = "TSV" if tsv else "CSV"
    header: list[str] | None = None
    header_line = 0
    rows: list[tuple[int, dict[str, Any]]] = []
    prev_end = 0
    try:
        for fields in reader:
            start, end = prev_end + 1, reader.line_num
            prev_end = end
            if not fields:  # blank line
                continue
            if header is None:
                header = [f.strip() for f in fields]
                header_line = start
                _check_header(path, header, start, kind)
                continue
            if len(fields) != len(header):
                raise DataError(_field_count_message(header, fields, start, end, tsv), path=str(path), line=start)
            rows.append((start, dict(zip(header, fields, strict=True))))
    except csv.Error as e:
        raise DataError(f"malformed {kind} ({e})", path=str(path), line=reader.line_num) from e
    assert header is not None  # the file is not blank
    if not rows:
        raise DataError(
            f"no data rows: the file holds only a header line ({', '.join(header)})",
            path=str(path), line=header_line,
        )
    return Table(path=str(path), columns=header, rows=rows)


def _check_header(path: Path, header: list[str], line: int, kind: str) -> None:
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise DataError(f"the header names column {name!r} twice; column names must be unique",
                            path=str(path), line=line)
        seen.add(name)
    if len(header) < 2:
        sep = "tabs" if kind == "TSV" else "commas"
        raise DataError(
            f"the header has a single column ({header[0]!r}); a {kind} file needs a text and a label "
            f"column separated by {sep}, and its first line must be a header naming them",
            path=str(path), line=line,
        )


def _field_count_message(header: list[str], fields: list[str], start: int, end: int, tsv: bool) -> str:
    msg = f"expected {len(header)} fields ({', '.join(header)}) but the row has {len(fields)}"
    if tsv:
        msg += "; fields must be separated by exactly one tab and texts must not contain tabs"
    else:
        msg += "; put double quotes around texts that contain commas"
        if end > start:
            msg += (f" (this row runs from line {start} to line {end}: check for an unbalanced "
                    "double quote)")
    return msg


def _read_json_lines(path: Path, text: str) -> Table:
    if text.lstrip().startswith("["):
        raise DataError(
            "the file looks like a JSON array; edgebert reads JSON Lines: one JSON object per line, "
            'e.g. {"text": "...", "label": "..."}', path=str(path), line=1,
        )
    columns: dict[str, None] = {}
    rows: list[tuple[int, dict[str, Any]]] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"malformed JSON: {e.msg} (column {e.colno})", path=str(path), line=lineno) from e
        if not isinstance(obj, dict):
            raise DataError(
                f"expected a JSON object per line, found {type(obj).__name__}", path=str(path), line=lineno
            )
        for key in obj:
            columns.setdefault(key, None)
        rows.append((lineno, obj))
    return Table(path=str(path), columns=list(columns), rows=rows)


def _find_column(columns: list[str], wanted: str) -> str | None:
    if wanted in columns:
        return wanted
    lower = wanted.lower()
    for c in columns:
        if c.lower() == lower:
            return c
    return None


def _first_match(columns: list[str], candidates) -> str | None:
    for cand in candidates:
        found = _find_column(columns, cand)
        if found is not None:
            return found
    return None


def resolve_columns(
    columns: list[str],
    source: str,
    *,
    text_column: str | None,
    text_pair_column: str | None,
    label_column: str | None,
) -> tuple[str, str | None, str]:
    """Find the (text, text pair, label) columns among ``columns``; ``None`` arguments are auto-detected."""
    found = ", ".join(repr(c) for c in columns) or "none"

    def missing(what: str, option: str, looked: str) -> DataError:
        return DataError(
            f"no {what} column: {looked}; columns found: {found}. Pass the column name with "
            f"{option}=NAME (CLI: --{option.replace('_', '-')} NAME)"
            + (". The first line of the file must be a header naming the columns" if columns else ""),
            path=source,
        )

    pair = None
    if text_column is not None:
        text = _find_column(columns, text_column)
        if text is None:
            raise missing("text", "text_column", f"column {text_column!r} not found")
        if text_pair_column is None:  # text_column=sentence1 with a sentence2 column: a pair task
            for first, second in PAIR_COLUMNS:
                if text.lower() == first and _find_column(columns, second) is not None:
                    pair = _find_column(columns, second)
                    break
    else:
        text = None
        if text_pair_column is None:
            for first, second in PAIR_COLUMNS:
                a, b = _find_column(columns, first), _find_column(columns, second)
                if a is not None and b is not None:
                    text, pair = a, b
                    break
        if text is None:
            text = _first_match(columns, TEXT_COLUMNS)
        if text is None:
            raise missing("text", "text_column", "looked for " + ", ".join(TEXT_COLUMNS))
    if text_pair_column is not None:
        pair = _find_column(columns, text_pair_column)
        if pair is None:
            raise missing("text pair", "text_pair_column", f"column {text_pair_column!r} not found")

    if label_column is not None:
        label = _find_column(columns, label_column)
        if label is None:
            raise missing("label", "label_column", f"column {label_column!r} not found")
    else:
        label = _first_match(columns, LABEL_COLUMNS)
        if label is None:
            raise missing("label", "label_column", "looked for " + ", ".join(LABEL_COLUMNS))
    if label in (text, pair):
        raise DataError(f"column {label!r} cannot be both a text and the label column", path=source)
    if pair is not None and pair == text:
        raise DataError(f"column {text!r} cannot be both the text and the text pair column", path=source)
    return text, pair, label


def _cell_text(value: Any, what: str, column: str, path: str, line: int) -> str:
    if value is None:
        raise DataError(f"missing {what} (column {column!r})", path=path, line=line)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"the {what} in column {column!r} must be a string, found {type(value).__name__}",
                        path=path, line=line)
    return str(value).strip()


def _cell_label(value: Any, column: str, path: str, line: int) -> str:
    if value is None:
        raise DataError(f"missing label (column {column!r})", path=path, line=line)
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise DataError(f"the label in column {column!r} must be a string or an integer, found "
                        f"{type(value).__name__}", path=path, line=line)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    label = str(value).strip()
    if not label:
        raise DataError(f"missing label (column {column!r} is empty)", path=path, line=line)
    return label


def extract(table: Table, text: str, pair: str | None, label: str) -> RawSplit:
    """Pull the text, pair and label columns out of ``table``, checking every row."""
    texts: list[str] = []
    pairs: list[str] | None = [] if pair is not None else None
    labels: list[str] = []
    lines: list[int] = []
    for line, row in table.rows:
        for col, what in ((text, "text"), (pair, "text pair"), (label, "label")):
            if col is not None and col not in row:
                raise DataError(f"the row has no {col!r} field (the {what} column)", path=table.path, line=line)
        t = _cell_text(row[text], "text", text, table.path, line)
        if not t:
            raise DataError(f"empty text (column {text!r})", path=table.path, line=line)
        texts.append(t)
        if pair is not None:
            p = _cell_text(row[pair], "text pair", pair, table.path, line)
            if not p:
                raise DataError(f"empty text pair (column {pair!r})", path=table.path, line=line)
            pairs.append(p)  # type: ignore[union-attr]
        labels.append(_cell_label(row[label], label, table.path, line))
        lines.append(line)
    return RawSplit(source=table.path, texts=texts, labels=labels, text_pairs=pairs, lines=lines)


def parse_int(label: str) -> int | None:
    """``label`` as an int when it is a plain (ASCII) integer, else ``None``."""
    return int(label) if _INT_RE.fullmatch(label) else None
