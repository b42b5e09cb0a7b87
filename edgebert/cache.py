"""What makes two compress runs and two stages the same: keys, input identity, the run lock, staging, and the
stage cache.

A run is identified by its input model (by content, or a hub id's cached revision), its data (by content,
columns and labels), its target and its seed. Each stage's key chains the previous key with the stage's
resolved config, starting from the run's inputs and the versions of the code that shapes outputs: a
re-run skips a stage whose key and output hash are unchanged. While a run writes into a folder it holds
an operating-system lock on ``LOCK_NAME`` there, released by the system however the run ends; the
staging folders a killed run leaves are removed by the next run.

The stage cache: finished stage outputs shared between compress runs, keyed like the stages.
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

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgebert.artifact import not_ours_message, sha256_file, sha256_tree, staged_dir, write_json
from edgebert.errors import EdgebertError, OutputExistsError
from edgebert.manifest import MANIFEST_NAME, Manifest, ManifestError, StageRecord, read_manifest, stage_record

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


def stage_key(prev: str, cfg, host: str | None = None, revision: str | None = None) -> str:
    """The key of a stage with resolved config ``cfg`` after the stage keyed ``prev`` (``host``, ``revision``:
    what the stage declares beyond its config, e.g. the TensorRT that builds an engine)."""
    dumped = cfg.model_dump(mode="json")
    for name, default in getattr(cfg, "KEYED_FROM_DEFAULT", {}).items():  # added later: keys stay as they were
        if dumped.get(name) == default:
            dumped.pop(name)
    body = json.dumps(dumped, sort_keys=True)
    text = f"{prev}\n{cfg.kind}\n{body}" + (f"\nhost: {host}" if host is not None else "")
    text += f"\nrevision: {revision}" if revision is not None else ""
    return hashlib.sha256(text.encode()).hexdigest()


def model_identity(ref: str) -> tuple[str, str]:
    """(resolved location, sha256) of the input model; hub ids hash their cached files when loaded."""
    from edgebert import models

    resolved = models.resolve(ref)
    if resolved.kind == "hub":  # the cached revision (commit) load_config fetched: a new upload is another model
        return resolved.path, f"hub:{resolved.path}@{hub_revision(resolved.path)}"
    return resolved.path, sha256_tree(resolved.path)


def hub_revision(hub_id: str) -> str:
    """The commit of ``hub_id``'s cached snapshot (its config.json's snapshot folder), 'unknown' if not cached."""
    from huggingface_hub import try_to_load_from_cache

    path = try_to_load_from_cache(hub_id, "config.json")
    return Path(path).parent.name if isinstance(path, str) else "unknown"


def _split_sha256(split) -> str:
    return hashlib.sha256(json.dumps([split.texts, split.text_pairs, split.labels]).encode()).hexdigest()


def changed_versions(before: dict[str, Any], now: dict[str, Any]) -> str:
    """'torch 2.12.0 -> 2.13.0, ...' for the output-shaping libraries a previous manifest recorded otherwise."""
    return ", ".join(f"{name} {before[name]} -> {now[name]}" for name in now
                     if name in before and before[name] != now[name])


def data_identity(dataset) -> dict[str, Any]:
    """What the run's data is: its files' and rows' content, columns, labels and splits."""
    from edgebert.data import file_sha256

    files = {}
    for split, path in sorted(dataset.files.items()):
        try:
            files[split] = file_sha256(path)
        except (OSError, TypeError):
            files[split] = str(path)
    # The columns and label names say what the rows mean: the same file read with another --text-column
    # or relabelled is other data.
    return {"name": dataset.name, "labels": len(dataset.label_names), "label_names": list(dataset.label_names),
            "columns": {"text": dataset.text_column, "label": dataset.label_column,
                        "text_pair": dataset.text_pair_column},
            "files": files, "rows": {k: len(v) for k, v in dataset.splits.items()},
            # what the rows hold, whatever their source (files, a hub dataset, a Dataset built in code)
            "content": {k: _split_sha256(v) for k, v in sorted(dataset.splits.items())},
            "dev_from_train": dataset.dev_from_train}


def _same(run: dict[str, Any], key: str) -> Any:
    """What must match for two runs to be the same one (data by content, not by how its path was spelt)."""
    value = run.get(key)
    if key == "data" and isinstance(value, dict):
        return {k: v for k, v in value.items() if k != "name"}
    return value


def first_key(run: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The key a run's chain of stage keys starts from, and the library versions it covers.

    The chain starts from what the stages read (model, data, seed) and the code that shapes their
    outputs (edgebert's and its libraries' versions); the recipe's name does not matter."""
    from edgebert.artifact import output_versions

    inputs = {**{k: _same(run, k) for k in ("model_sha256", "data", "seed")}, "code": output_versions()}
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, default=str).encode()).hexdigest(), inputs["code"]


def prepare_out(out: Path, run: dict[str, Any], overwrite: bool, keep: tuple[str, ...] = ()) -> Manifest | None:
    """The previous manifest of this same run (to resume / skip), or None; refuses another run's folder.
    ``out`` is a folder (compress checked it) whose run lock this run holds; entries named in ``keep``
    (a search's candidates) are neither counted nor removed."""
    spared = (LOCK_NAME, *keep)
    if not out.is_dir() or not any(p.name not in spared for p in out.iterdir()):
        return None
    try:
        previous: Manifest | None = read_manifest(out / MANIFEST_NAME)
    except ManifestError as exc:
        if exc.reason == "garbled":
            raise OutputExistsError(f"{exc}: choose another --out, or delete that folder yourself if it is a broken "
                                    "run of yours.") from None
        previous = None
    if previous is None or not previous.is_artifact:  # never deleted, not even with --overwrite
        raise OutputExistsError(not_ours_message(out, "compress artifact"))
    before = previous.run.to_dict() if previous.run is not None else {}
    differs = [k for k in ("model_sha256", "data", "target", "seed") if _same(before, k) != _same(run, k)]
    # A run that stopped before finishing any stage left nothing to lose: any run may take its folder
    # (e.g. the same command again with a repaired model or data file).
    produced = bool(previous.done_stages())
    if overwrite or (differs and not produced):  # everything but the lock this run holds
        for p in out.iterdir():
            if p.name in spared:
                continue
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()
        return None
    if differs:
        raise OutputExistsError(
            f"Output folder '{out}' holds another run (different {', '.join(differs)}: it was built from "
            f"model '{before.get('model')}', target '{before.get('target')}'). Choose another --out, or pass "
            "--overwrite to replace it."
        )
    return previous


LOCK_NAME = ".edgebert-compress.lock"


def _lock(root: Path):
    """``root``'s run lock: an operating-system lock (flock) on ``root/LOCK_NAME``, released by the OS
    when its holder exits in any way (SIGKILL, a stopped container), so no lock is ever left stale.
    The file itself stays in place (waiters must share its inode)."""
    import filelock

    return filelock.FileLock(str(root / LOCK_NAME), timeout=0)


def _busy(out: Path) -> OutputExistsError:
    return OutputExistsError(
        f"Output folder '{out}' is being written by another edgebert compress (it holds {out / LOCK_NAME}). "
        "Wait for it to finish, or choose another --out.")


def check_lock(out: Path) -> None:
    """Refuse a folder another run is writing (its lock is held), before anything is created."""
    if not (out / LOCK_NAME).is_file():
        return
    import filelock

    try:
        with _lock(out):
            pass
    except filelock.Timeout:
        raise _busy(out) from None


@contextlib.contextmanager
def run_lock(root: Path):
    """Hold ``root``'s run lock while stages write into it (two runs into one folder would mix files)."""
    import filelock

    lock = _lock(root)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise _busy(root) from None
    try:
        yield
    finally:
        lock.release()


def remove_leftovers(root: Path) -> None:
    """Staging folders of a run that was killed (SIGKILL, power loss) before it could remove them."""
    for parent in (root, root / "stages"):
        for pattern in (".*.partial-*", ".*.old-*"):
            for leftover in parent.glob(pattern) if parent.is_dir() else []:
                if leftover.is_dir():
                    shutil.rmtree(leftover, ignore_errors=True)
                else:
                    leftover.unlink(missing_ok=True)


def input_hash(art, stage) -> str:
    """sha256 of what ``stage`` reads of the state ``art``: its ONNX file, else its model folder."""
    if stage.reads == "onnx" and art.onnx:
        return sha256_file(art.path(art.onnx))
    path = Path(art.model) if Path(art.model).is_absolute() else art.root / art.model
    return sha256_tree(path) if path.is_dir() else f"ref:{art.model}"


def try_put(cache_dir, key, index, folder, record: StageRecord, say: Callable[[str], None]) -> None:
    """Fill the stage cache; the cache is an optimisation: a failure is said, never fatal."""
    if cache_dir is None:
        return
    try:
        put(cache_dir, key, index, folder, record.to_dict())
    except (OSError, EdgebertError) as exc:
        say(f"Stage cache {cache_dir} not filled ({exc}); the run goes on")


def try_take(cache_dir, key, index, folder, input_sha, say: Callable[[str], None]) -> StageRecord | None:
    """The cached record of this stage (its files put into ``folder``), or None; never fails the run."""
    if cache_dir is None:
        return None
    try:
        record = take(cache_dir, key, index, folder, input_sha)
        return None if record is None else stage_record(record)
    except (OSError, EdgebertError) as exc:
        say(f"Stage cache {cache_dir} not read ({exc}); the stage runs")
        return None
