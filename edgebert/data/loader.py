"""``load_dataset``: local files and directories, the builtin demo set, and Hugging Face Hub ids."""

from __future__ import annotations

import os
import re
from pathlib import Path

from edgebert.errors import DataError, DatasetNotFoundError, LabelMismatchError

from .dataset import Dataset, Split, _format_names
from .files import (
    SUPPORTED_EXTENSIONS,
    RawSplit,
    check_extension,
    extract,
    parse_int,
    read_table,
    resolve_columns,
)
from .hub import load_hub_splits, looks_like_hub_id
from .oos import DEFAULT_OOS_LABEL, read_oos_texts, with_out_of_scope

#: builtin dataset alias -> one-line description (files live in ``edgebert/data/builtin/``)
BUILTIN_DATASETS: dict[str, str] = {
    "intents": "customer-service intents written for edgebert: 10 intents, 300 train / 80 test "
               "utterances (demo data, not for published accuracy figures)",
}

BUILTIN_DIR = Path(__file__).resolve().parent / "builtin"

# file stems (lower-case) that name each split inside a dataset directory
_DIR_SPLIT_STEMS = {"train": ("train",), "dev": ("dev", "validation"), "test": ("test",)}

# suffixes that make a missing name a file path rather than a hub id
_FILE_SUFFIXES = set(SUPPORTED_EXTENSIONS) | {".txt", ".parquet", ".arrow", ".xlsx", ".xls", ".gz",
                                               ".zip", ".bz2", ".xz"}


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes (for run manifests); typed errors for missing/unreadable files."""
    from edgebert.artifact import sha256_file

    p = Path(path)
    try:
        return sha256_file(p)
    except FileNotFoundError:
        raise DatasetNotFoundError("file not found", path=str(p)) from None
    except OSError as e:
        raise DataError(f"cannot read file: {e.strerror or e}", path=str(p)) from e


def builtin_files(alias: str) -> dict[str, Path]:
    """The split files of builtin dataset ``alias`` (``DatasetNotFoundError`` if unknown)."""
    if alias not in BUILTIN_DATASETS:
        raise DatasetNotFoundError(
            f"unknown builtin dataset {alias!r}; builtin datasets: {', '.join(sorted(BUILTIN_DATASETS))}"
        )
    files = {}
    for split in ("train", "dev", "test"):
        p = BUILTIN_DIR / f"{alias}_{split}.csv"
        if p.is_file():
            files[split] = p
    if "train" not in files:  # a broken installation
        raise DatasetNotFoundError(f"builtin dataset {alias!r} is missing its files in {BUILTIN_DIR}")
    return files


def _looks_like_path(s: str) -> bool:
    if s.startswith((".", "/", "~")) or "\\" in s or re.match(r"^[A-Za-z]:[\\/]", s):
        return True
    if s.count("/") > 1 or any(c.isspace() for c in s):
        return True
    return Path(s).suffix.lower() in _FILE_SUFFIXES or not looks_like_hub_id(s)


def _directory_files(d: Path) -> dict[str, Path]:
    entries = sorted(d.iterdir())
    found: dict[str, Path] = {}
    for split, stems in _DIR_SPLIT_STEMS.items():
        matches = [p for p in entries if p.is_file() and p.stem.lower() in stems
                   and p.suffix.lower() in SUPPORTED_EXTENSIONS]
        if len(matches) > 1:
            raise DataError(
                f"directory holds several {split} files ({', '.join(p.name for p in matches)}); keep one, "
                "or pass the files explicitly (a train file as data, plus dev=/test=)",
                path=str(d),
            )
        if matches:
            found[split] = matches[0]
    if "train" not in found:
        names = [p.name + ("/" if p.is_dir() else "") for p in entries]
        held = ", ".join(names[:20]) + (f", ... ({len(names) - 20} more)" if len(names) > 20 else "")
        raise DatasetNotFoundError(
            "directory has no train file: expected train.csv, train.tsv, train.jsonl or train.json "
            f"(plus optional dev.* or validation.*, and test.*); it holds: {held or 'nothing'}",
            path=str(d),
        )
    return found


def _local_file(p: str | os.PathLike, what: str) -> Path:
    path = Path(os.fspath(p)).expanduser()
    if not path.exists():
        raise DatasetNotFoundError(f"{what} file not found", path=str(path))
    if path.is_dir():
        raise DataError(f"{what} must be a file, not a directory", path=str(path))
    check_extension(path)
    return path


def load_dataset(
    data: str | os.PathLike,
    *,
    dev: str | os.PathLike | None = None,
    test: str | os.PathLike | None = None,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    dev_fraction: float = 0.1,
    seed: int = 42,
    max_rows: int | None = None,
    oos_data: str | os.PathLike | None = None,
    oos_label: str | None = None,
) -> Dataset:
    """Load a labelled text-classification dataset.

    ``data`` is a train file (.csv/.tsv/.jsonl/.json), a directory with ``train.*`` and optional
    ``dev.*``/``validation.*`` and ``test.*``, ``builtin:NAME`` (or just ``NAME``) for a dataset in
    :data:`BUILTIN_DATASETS`, or a Hugging Face dataset id (needs the optional ``datasets`` package
    and a network). Without a dev split, a stratified ``dev_fraction`` of train (seeded) becomes dev.
    ``max_rows`` keeps a stratified, seeded subset of train rows. ``oos_data``: a file of out-of-scope
    texts, added as the class ``oos_label`` (default ``out_of_scope``; see :mod:`edgebert.data.oos`).
    """
    ds = _load(data, dev=dev, test=test, text_column=text_column, text_pair_column=text_pair_column,
               label_column=label_column, dev_fraction=dev_fraction, seed=seed, max_rows=max_rows)
    if oos_data is None:
        if oos_label is not None:
            raise DataError("--oos-label names the class of the out-of-scope texts: give them with --oos-data FILE")
        return ds
    texts = read_oos_texts(oos_data)
    return with_out_of_scope(ds, texts, label=oos_label or DEFAULT_OOS_LABEL, seed=seed, source=str(Path(oos_data).resolve()))


def _load(data, *, dev, test, text_column, text_pair_column, label_column, dev_fraction, seed, max_rows) -> Dataset:
    if not 0.0 < float(dev_fraction) < 1.0:
        raise DataError(f"dev_fraction must be between 0 and 1 (exclusive), got {dev_fraction}")
    if max_rows is not None and int(max_rows) < 1:
        raise DataError(f"max_rows must be at least 1, got {max_rows}")
    columns = dict(text_column=text_column, text_pair_column=text_pair_column, label_column=label_column)

    is_pathlike = not isinstance(data, str)
    s = os.fspath(data)
    if isinstance(s, bytes):
        s = os.fsdecode(s)
    builtin_alias = None
    if not is_pathlike and s.startswith("builtin:"):
        builtin_alias = s[len("builtin:"):]
    path = Path(s).expanduser()
    if builtin_alias is None and not path.exists():
        if not is_pathlike and s in BUILTIN_DATASETS:
            builtin_alias = s
        elif is_pathlike or _looks_like_path(s):
            raise DatasetNotFoundError(
                "no such file or directory (data must be a CSV/TSV/JSONL file, a directory with "
                f"train.*, builtin:NAME ({', '.join(sorted(BUILTIN_DATASETS))}), or a Hugging Face "
                "dataset id)",
                path=s,
            )
        else:
            if dev is not None or test is not None:
                raise DataError("dev= and test= files can only be combined with a local train file or directory, "
                                f"not with the Hugging Face dataset id {s!r}")
            hub = load_hub_splits(s, **columns)
            return _build(s, hub.splits, files=hub.files, text_column=hub.text_column,
                          text_pair_column=hub.text_pair_column, label_column=hub.label_column,
                          label_names=hub.label_names, dev_fraction=dev_fraction, seed=seed, max_rows=max_rows)

    if builtin_alias is not None:
        name = f"builtin:{builtin_alias}"
        split_files: dict[str, Path] = builtin_files(builtin_alias)
    elif path.is_dir():
        name = s
        split_files = _directory_files(path)
    else:
        name = s
        split_files = {"train": _local_file(path, "train")}
    if dev is not None:
        split_files["dev"] = _local_file(dev, "dev")
    if test is not None:
        split_files["test"] = _local_file(test, "test")

    train_table = read_table(split_files["train"])
    text, pair, label = resolve_columns(train_table.columns, train_table.path, **columns)
    raws = {"train": extract(train_table, text, pair, label)}
    for split in ("dev", "test"):
        if split in split_files:
            table = read_table(split_files[split])
            # Same columns as train (explicitly, so that a differing header is reported clearly).
            t, p, lab = resolve_columns(table.columns, table.path, text_column=text,
                                        text_pair_column=pair, label_column=label)
            raws[split] = extract(table, t, p, lab)
    files = {k: str(v.resolve()) for k, v in split_files.items()}
    return _build(name, raws, files=files, text_column=text, text_pair_column=pair, label_column=label,
                  label_names=None, dev_fraction=dev_fraction, seed=seed, max_rows=max_rows)


def _label_names(train: RawSplit) -> tuple[list[str], bool]:
    """Sorted label names of the train split and whether they are integers."""
    values = set(train.labels)
    ints = {v: parse_int(v) for v in values}
    if all(i is not None for i in ints.values()):
        return [str(i) for i in sorted({i for i in ints.values()})], True  # type: ignore[type-var]
    return sorted(values), False


def _to_indices(raw: RawSplit, label2id: dict[str, int], int_labels: bool, split: str) -> list[int]:
    out: list[int] = []
    unseen: dict[str, int] = {}  # label -> index of the first row that has it
    for i, value in enumerate(raw.labels):
        key = value
        if int_labels:
            n = parse_int(value)
            key = str(n) if n is not None else value
        idx = label2id.get(key)
        if idx is None:
            unseen.setdefault(key, i)
            continue
        out.append(idx)
    if unseen:
        first = min(unseen.values())
        source, line = raw.where(first)
        names = list(unseen)
        raise LabelMismatchError(
            f"{len(names)} label(s) in the {split} split do not occur in train: {_format_names(names)}. "
            f"Train labels ({len(label2id)}): {_format_names(label2id, 20)}. A model can only predict "
            "labels it was trained on: fix the labels or add training rows for them",
            path=source, line=line,
        )
    return out


def _carve_dev(train: Split, dev_fraction: float, seed: int, source: str) -> tuple[Split, Split]:
    if len(train) < 2:
        raise DataError(
            f"the train split has {len(train)} row; carving a dev split needs at least 2 rows "
            "(add rows, or pass a dev file with dev=/--dev)", path=source,
        )
    from sklearn.model_selection import train_test_split

    indices = list(range(len(train)))
    try:
        tr, dv = train_test_split(indices, test_size=dev_fraction, random_state=seed, stratify=train.labels)
    except ValueError:  # a class with a single row, or fewer dev rows than classes
        try:
            tr, dv = train_test_split(indices, test_size=dev_fraction, random_state=seed)
        except ValueError as e:
            raise DataError(f"cannot carve a dev split of {dev_fraction} from {len(train)} train rows ({e}); "
                            "pass a dev file with dev=/--dev", path=source) from e
    return train.select(sorted(tr)), train.select(sorted(dv))


def _build(
    name: str,
    raws: dict[str, RawSplit],
    *,
    files: dict[str, str],
    text_column: str,
    text_pair_column: str | None,
    label_column: str,
    label_names: list[str] | None,
    dev_fraction: float,
    seed: int,
    max_rows: int | None,
) -> Dataset:
    train_raw = raws["train"]
    if label_names is None:
        label_names, int_labels = _label_names(train_raw)
    else:
        int_labels = False
    label2id = {n: i for i, n in enumerate(label_names)}
    splits: dict[str, Split] = {}
    for key in ("train", "dev", "test"):
        if key in raws:
            raw = raws[key]
            splits[key] = Split(texts=raw.texts, labels=_to_indices(raw, label2id, int_labels, key),
                                text_pairs=raw.text_pairs)
    dev_from_train = "dev" not in splits
    files = dict(files)
    if dev_from_train:
        splits["train"], splits["dev"] = _carve_dev(splits["train"], dev_fraction, seed, train_raw.source)
        files["dev"] = files["train"]
    if max_rows is not None:
        splits["train"] = splits["train"].subset(int(max_rows), seed=seed)
    ordered = {k: splits[k] for k in ("train", "dev", "test") if k in splits}
    files = {k: files[k] for k in ("train", "dev", "test") if k in files}
    return Dataset(
        name=name, label_names=list(label_names), splits=ordered, files=files,
        text_column=text_column, label_column=label_column, text_pair_column=text_pair_column,
        dev_from_train=dev_from_train,
    )
