"""The stage cache: finished stage outputs shared between compress runs, keyed like the stages.

Compressing one model for several targets runs the same first stages (fine-tuning, often pruning and
distillation) with the same configs and inputs. Each finished stage's folder is linked into the cache
under its key (the chain of keys the pipeline computes, plus the stage's position, which seeds it), and
a run that needs a stage with that key links it from there instead of running it. Files are hard links
where the file system allows (no second copy on disk), copies elsewhere. An entry is used only when
its files still hash to the recorded sha256, so a file edited or damaged in either place is never
reused; such an entry is dropped.

::

    CACHE/<sha256 of key and position>/
      record.json     {"folder": the stage folder it was made in, "record": the manifest's stage record}
      ...             the stage folder's files
"""

from __future__ import annotations

import hashlib
import os
import shutil
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
        try:
            os.link(path, target)
        except OSError:  # another file system, or links not allowed: a copy
            shutil.copy2(path, target)


def put(cache: Path, key: str, index: int, folder: Path, record: dict[str, Any]) -> None:
    """Link a finished stage ``folder`` and its manifest ``record`` into the cache (kept if present)."""
    entry = cache / entry_name(key, index)
    if (entry / _RECORD).is_file():
        return
    with staged_dir(entry) as stage:
        _link_tree(folder, stage)
        write_json(stage / _RECORD, {"folder": str(folder), "record": record})


class _Stale(Exception):
    pass


def take(cache: Path, key: str, index: int, folder: Path) -> dict[str, Any] | None:
    """Put the cached output of the stage keyed ``key`` at ``index`` into ``folder`` and return its
    record, the paths in its metrics moved to ``folder``; None when the cache has no intact entry."""
    import json

    entry = cache / entry_name(key, index)
    try:
        data = json.loads((entry / _RECORD).read_text(encoding="utf-8"))
        record, made_in = dict(data["record"]), str(data["folder"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        with staged_dir(folder) as stage:
            _link_tree(entry, stage, skip=_RECORD)
            if sha256_tree(stage) != record.get("output_sha256"):
                raise _Stale
    except _Stale:
        shutil.rmtree(entry, ignore_errors=True)  # changed since it was cached: never reused
        return None
    record["metrics"] = relocate(record.get("metrics"), made_in, str(folder))
    record["taken_from"] = made_in  # the run that made it
    return record


def relocate(data: Any, old: str, new: str) -> Any:
    """Paths recorded under folder ``old`` (strings equal to it or below it), moved to ``new``."""
    if isinstance(data, str):
        return new + data[len(old):] if data == old or data.startswith(old + "/") else data
    if isinstance(data, dict):
        return {k: relocate(v, old, new) for k, v in data.items()}
    if isinstance(data, list):
        return [relocate(v, old, new) for v in data]
    return data
