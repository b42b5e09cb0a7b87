"""Hugging Face Hub access: a fast offline check and loading datasets with the optional ``datasets`` package.

Nothing here retries or waits on the network for long: when the Hub is switched off by the
environment (``HF_HUB_OFFLINE`` / ``HF_DATASETS_OFFLINE``) or does not answer a TCP connect within a
few seconds, callers get a clear error at once. This module never sets environment variables.
"""

from __future__ import annotations

import os
import re
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlparse

from edgebert.errors import DataError, DatasetNotFoundError, MissingDependencyError

from .files import RawSplit, resolve_columns

DEFAULT_ENDPOINT = "https://huggingface.co"
OFFLINE_ENV_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")
_TRUTHY = {"1", "ON", "YES", "TRUE", "Y", "T"}

# owner/name, name, optionally ":config"
HUB_ID_RE = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?(:[\w.-]+)?$")

# HF split name -> edgebert split name (first match wins for dev and test)
_SPLIT_MAP = (
    ("train", "train"),
    ("validation", "dev"), ("valid", "dev"), ("dev", "dev"), ("validation_matched", "dev"),
    ("test", "test"), ("test_matched", "test"),
)


def _truthy(value: str | None) -> bool:
    return value is not None and value.strip().upper() in _TRUTHY


def hub_offline_env() -> bool:
    """True when ``HF_HUB_OFFLINE`` or ``HF_DATASETS_OFFLINE`` asks for offline mode."""
    return any(_truthy(os.environ.get(name)) for name in OFFLINE_ENV_VARS)


def hub_endpoint() -> str:
    """The Hub URL: ``HF_ENDPOINT`` or https://huggingface.co."""
    return (os.environ.get("HF_ENDPOINT") or "").strip() or DEFAULT_ENDPOINT


def hub_reachable(timeout: float = 3.0) -> bool:
    """True when a TCP connection to the Hub endpoint's host opens within ``timeout`` seconds.

    The probe (name lookup included) runs in a daemon thread, so a hanging DNS lookup cannot
    stretch the wait beyond ``timeout`` (plus a little).
    """
    url = urlparse(hub_endpoint())
    host = url.hostname
    if not host:
        return False
    try:
        port = url.port or (80 if url.scheme == "http" else 443)
    except ValueError:
        return False
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except (OSError, ValueError):
            result.append(False)

    thread = threading.Thread(target=probe, name="edgebert-hub-probe", daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(result and result[0])


def hub_unavailable_reason(timeout: float = 3.0) -> str | None:
    """Why the Hub cannot be used now (offline env var set, or endpoint unreachable); ``None`` if it can."""
    if hub_offline_env():
        names = [n for n in OFFLINE_ENV_VARS if _truthy(os.environ.get(n))]
        return f"{' and '.join(names)} {'is' if len(names) == 1 else 'are'} set"
    if not hub_reachable(timeout):
        return f"{hub_endpoint()} cannot be reached"
    return None


def looks_like_hub_id(s: str) -> bool:
    return bool(HUB_ID_RE.fullmatch(s))


def parse_hub_id(hub_id: str) -> tuple[str, str | None]:
    """``name``, ``org/name``, ``name:config`` -> (path, config). ``glue/TASK`` means GLUE config TASK."""
    path, _, config = hub_id.partition(":")
    if not config and path.count("/") == 1:
        owner, name = path.split("/")
        if owner.lower() == "glue":
            return "nyu-mll/glue", name
    return path, config or None


def _offline_message(hub_id: str, reason: str) -> str:
    return (
        f"dataset {hub_id!r} is not a local file or directory, and as a Hugging Face Hub dataset it is "
        f"not available offline ({reason}). Instead pass a local CSV/TSV/JSONL file (e.g. "
        "--data ./train.csv, with --dev/--test for other splits) or a directory holding "
        "train.csv/dev.csv/test.csv (or .tsv/.jsonl), or use the builtin demo dataset "
        "'intents' (--data builtin:intents)."
    )


@dataclass
class HubData:
    splits: dict[str, RawSplit]
    text_column: str
    text_pair_column: str | None
    label_column: str
    label_names: list[str] | None  # from a ClassLabel feature, else None
    files: dict[str, str]


def load_hub_splits(
    hub_id: str,
    *,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    probe_timeout: float = 3.0,
) -> HubData:
    """Download ``hub_id`` with ``datasets`` and return its train/dev/test rows.

    Raises :class:`DatasetNotFoundError` at once when the Hub is unavailable, and
    :class:`MissingDependencyError` when ``datasets`` is not installed.
    """
    reason = hub_unavailable_reason(probe_timeout)
    if reason is not None:
        raise DatasetNotFoundError(_offline_message(hub_id, reason))
    try:
        import datasets  # type: ignore[import-not-found]
    except ImportError:
        raise MissingDependencyError(
            "datasets", extra="datasets", purpose=f"loading the Hugging Face dataset {hub_id!r}"
        ) from None

    path, config = parse_hub_id(hub_id)
    try:
        loaded = datasets.load_dataset(path, config) if config else datasets.load_dataset(path)
    except Exception as e:  # datasets raises many types: missing repo, missing config, network
        raise DatasetNotFoundError(
            f"cannot load Hugging Face dataset {hub_id!r} ({type(e).__name__}: {e}). Check the id "
            "(org/name, name:config, glue/TASK), or pass a local CSV/TSV/JSONL file or directory."
        ) from e

    available = list(loaded.keys())
    chosen: dict[str, str] = {}
    for hf_name, ours in _SPLIT_MAP:
        if hf_name in loaded and ours not in chosen:
            chosen[ours] = hf_name
    if "train" not in chosen:
        raise DatasetNotFoundError(
            f"Hugging Face dataset {hub_id!r} has no 'train' split (it has: {', '.join(available)})"
        )

    train = loaded[chosen["train"]]
    text, pair, label = resolve_columns(
        list(train.column_names), hub_id,
        text_column=text_column, text_pair_column=text_pair_column, label_column=label_column,
    )
    feature = train.features.get(label) if hasattr(train, "features") else None
    class_names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None

    splits: dict[str, RawSplit] = {}
    for ours, hf_name in chosen.items():
        ds = loaded[hf_name]
        source = f"{hub_id} [{hf_name}]"
        missing_cols = [c for c in (text, pair, label) if c is not None and c not in ds.column_names]
        if missing_cols:
            raise DataError(f"split {hf_name!r} lacks column(s) {', '.join(missing_cols)}; it has: "
                            f"{', '.join(ds.column_names)}", path=source)
        raw_labels = list(ds[label])
        if any(v is None or (isinstance(v, int) and v < 0) for v in raw_labels):
            if ours == "train":
                raise DataError("the train split has unlabelled rows (label missing or -1)", path=source)
            continue  # e.g. GLUE test sets: labels are hidden (-1); the split is useless for evaluation
        texts = _hub_texts(ds[text], source, text)
        pairs = _hub_texts(ds[pair], source, pair) if pair is not None else None
        if class_names is not None:
            labels = [class_names[v] for v in raw_labels]
        else:
            labels = [str(int(v) if isinstance(v, float) and v.is_integer() else v).strip() for v in raw_labels]
        splits[ours] = RawSplit(source=source, texts=texts, labels=labels, text_pairs=pairs, lines=None)
    if not splits["train"].texts:
        raise DataError("the train split is empty", path=f"{hub_id} [{chosen['train']}]")
    return HubData(
        splits=splits, text_column=text, text_pair_column=pair, label_column=label,
        label_names=class_names, files={k: hub_id for k in splits},
    )


def _hub_texts(values, source: str, column: str) -> list[str]:
    out = []
    for i, v in enumerate(values):
        t = "" if v is None else str(v).strip()
        if not t:
            raise DataError(f"row {i} has an empty text in column {column!r}", path=source)
        out.append(t)
    return out
