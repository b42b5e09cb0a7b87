"""The stage cache: finished stage outputs shared between compress runs, keyed like the stages.

Compressing one model for several targets runs the same first stages (fine-tuning, often pruning and
distillation) with the same configs and inputs. Each finished stage's folder is linked into the cache
under its key (the chain of keys the pipeline computes, plus the stage's position, which seeds it), and
a run that needs a stage with that key links it from there instead of running it. Files are hard links
where the file system allows (no second copy on disk), copies elsewhere. An entry is used only when
its files still hash to the recorded sha256 and it was made from the same input, so a file edited or
damaged in either place is never reused. A cache folder of another user, or one anyone may write to,
is not used. Cache failures never fail a run: the stage runs instead.

::

    CACHE/<sha256 of key and position>/
      record.json     {"folder": the stage folder it was made in, "record": the manifest's stage record}
      ...             the stage folder's files
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from edgebert.artifact import sha256_tree, staged_dir, write_json

CACHE_DIRNAME = ".edgebert-stage-cache"
_RECORD = "record.json"


def default_cache_dir(out: Path) -> Path:
    """The cache beside an artifact folder: every run written under the same parent shares it."""
    return Path(out).resolve().parent / CACHE_DIRNAME


def entry_name(key: str, index: int) -> str:
    return hashlib.sha256(f"{key}\n{index}".encode()).hexdigest()


def _link_tree(src: Path, dst: Path, skip: str | None = None) -> None:
    for path in sorted(src.rglob("*")):
        if not path.is_file() or (skip and path.parent == src and path.name == skip):
            continue
        target = dst / path.relative_to(src)
        target.parent.mkdir(parents=True, exist_ok=True)
        link_or_copy(path, target)


def link_or_copy(src: Path, dst: Path) -> None:
    """A hard link (same file system: no second copy of a large model), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def put(cache: Path, key: str, index: int, folder: Path, record: dict[str, Any]) -> None:
    """Link a finished stage ``folder`` and its manifest ``record`` into the cache (kept if present).

    The entry appears in one rename; where another run filled it meanwhile, that one is kept."""
    entry = cache / entry_name(key, index)
    if (entry / _RECORD).is_file():
        return
    cache.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{entry.name}.partial-", dir=cache))
    try:
        _link_tree(folder, stage)
        write_json(stage / _RECORD, {"folder": str(folder), "record": record})
        os.rename(stage, entry)  # fails where the entry exists: the first run's entry stays
    except OSError:
        if not (entry / _RECORD).is_file():
            raise
    finally:
        shutil.rmtree(stage, ignore_errors=True)


class _Stale(Exception):
    pass


def take(cache: Path, key: str, index: int, folder: Path, input_sha256: str) -> dict[str, Any] | None:
    """Put the cached output of the stage keyed ``key`` at ``index`` into ``folder`` and return its
    record, the paths in its metrics moved to ``folder``; None when the cache has no intact entry made
    from the same input (``input_sha256``: a stage before it that ran again may have made another input,
    since training is not bit-reproducible). An entry is never deleted here (another run may be using it)."""
    import json

    entry = cache / entry_name(key, index)
    try:
        data = json.loads((entry / _RECORD).read_text(encoding="utf-8"))
        record, made_in = dict(data["record"]), str(data["folder"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if record.get("input_sha256") != input_sha256:
        return None
    try:
        with staged_dir(folder) as stage:
            _link_tree(entry, stage, skip=_RECORD)
            if sha256_tree(stage) != record.get("output_sha256"):
                raise _Stale
    except _Stale:
        return None  # changed since it was cached: never reused
    record["metrics"] = relocate(record.get("metrics"), made_in, str(folder))
    record["taken_from"] = made_in  # the run that made it
    return record


def usable(cache: Path) -> str | None:
    """Why ``cache`` must not be used (None: it may): a cache another user owns or anyone may write to
    could hold planted entries (their hashes only prove they agree with their own records)."""
    try:
        info = cache.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"it cannot be read ({exc.strerror})"
    if hasattr(os, "getuid") and info.st_uid != os.getuid():
        return "it belongs to another user"
    if info.st_mode & 0o002:
        return "anyone may write to it"
    return None


def relocate(data: Any, old: str, new: str) -> Any:
    """Paths recorded under folder ``old`` (strings equal to it or below it), moved to ``new``."""
    if isinstance(data, str):
        return new + data[len(old):] if data == old or data.startswith(old + "/") else data
    if isinstance(data, dict):
        return {k: relocate(v, old, new) for k, v in data.items()}
    if isinstance(data, list):
        return [relocate(v, old, new) for v in data]
    return data
