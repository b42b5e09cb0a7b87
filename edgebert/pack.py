"""The deployable part of an artifact folder, packed for a device.

An artifact folder keeps every stage's output under ``stages/`` (hundreds of MB: checkpoints that
later runs resume from). A device needs only what the runtime reads: ``model/`` (the deployed files),
``tokenizer/``, ``labels.json`` and ``manifest.json`` (its ``deploy`` block says how to run the model).
:func:`pack` writes exactly these into one ``.tar.gz``; unpacked anywhere, the folder is an artifact
that ``edgebert predict`` / ``serve`` and :class:`edgebert.runtime.Classifier` load.
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

from edgebert.artifact import _output_error, check_writable
from edgebert.errors import ConfigError, ManifestError, OutputExistsError
from edgebert.manifest import MANIFEST_NAME, deploy_block, read_manifest

#: what a device needs of an artifact folder (files and folders at its top level)
DEPLOYABLE = (MANIFEST_NAME, "labels.json", "model", "tokenizer")


@dataclass
class PackResult:
    path: Path          # the .tar.gz written
    folder: str         # the folder it unpacks to
    bytes: int          # its size
    files: list[str]    # the files inside, relative to the folder it unpacks to


def deployable_files(artifact: str | os.PathLike) -> list[Path]:
    """The files of a finished artifact folder that a device needs (see :data:`DEPLOYABLE`)."""
    root = Path(artifact)
    try:
        manifest = read_manifest(root / MANIFEST_NAME)
    except ManifestError:
        raise ConfigError(f"'{root}' is not an edgebert artifact folder (no readable manifest.json). "
                          "Pass the folder edgebert compress wrote.") from None
    if manifest.status != "complete" or not deploy_block(manifest):
        raise ConfigError(f"The compress run in '{root}' has not finished (manifest status "
                          f"'{manifest.status}'): run the same edgebert compress command again to finish it.")
    missing = [name for name in DEPLOYABLE if not (root / name).exists()]
    if missing:
        raise ConfigError(f"Artifact '{root}' lacks {', '.join(missing)}; re-run its edgebert compress command.")
    files = []
    for name in DEPLOYABLE:
        path = root / name
        files += sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return files


def pack(artifact: str | os.PathLike, out: str | os.PathLike | None = None, *, overwrite: bool = False) -> PackResult:
    """Write the deployable part of ``artifact`` to ``out`` (default ``<artifact>.tar.gz`` beside it),
    as a folder named after the artifact. Written to a temporary name and renamed when complete."""
    root = Path(artifact)
    files = deployable_files(root)
    out = Path(out) if out is not None else root.resolve().with_name(root.resolve().name + ".tar.gz")
    if out.is_dir():
        raise OutputExistsError(f"'{out}' is a folder; pass a file name such as {out / (root.resolve().name + '.tar.gz')}.")
    if out.exists() and not overwrite:
        raise OutputExistsError(f"'{out}' exists; pass --overwrite to replace it, or choose another --out.")
    check_writable(out, replaced=True)
    top = root.resolve().name
    tmp = out.with_name(f".{out.name}.partial-{os.getpid()}")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tmp, "w:gz") as tar:
            for path in files:
                tar.add(path, arcname=f"{top}/{path.relative_to(root).as_posix()}", recursive=False)
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        error = _output_error(exc, out.parent)
        if error is exc:
            raise
        raise error from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return PackResult(out, top, out.stat().st_size, [p.relative_to(root).as_posix() for p in files])
