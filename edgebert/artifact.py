"""Artifact folders and manifests: hashing, environment facts, atomic writes.

Every command that writes a folder (``finetune``, later ``compress``) builds it in a sibling
staging folder and renames it into place only when complete, so a failed or interrupted run never
leaves a half-written folder where a finished one is expected.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import platform
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Any, Iterator

from edgebert.errors import OutputExistsError

MANIFEST_SCHEMA_VERSION = 1


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of one file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_tree(folder: str | os.PathLike, exclude: tuple[str, ...] = ("manifest.json",)) -> str:
    """Hex sha256 over every file in a folder (relative paths and contents, sorted)."""
    root = Path(folder)
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in exclude):
        h.update(str(path.relative_to(root)).encode())
        h.update(b"\0")
        h.update(sha256_file(path).encode())
    return h.hexdigest()


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries whose behaviour determines results (None when absent)."""
    names = [
        "edgebert", "torch", "transformers", "tokenizers", "accelerate", "peft", "onnx",
        "onnxruntime", "optimum", "optimum-onnx", "tensorrt", "numpy", "scikit-learn",
    ]
    return {"python": platform.python_version(), **_versions(names)}


def _versions(names) -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


#: the packages whose versions change what a compress stage writes (models, ONNX files, scores); a
#: stage's key includes them, so an upgrade re-runs stages instead of reusing outputs of other code
OUTPUT_LIBRARIES = ("edgebert", "torch", "transformers", "tokenizers", "safetensors", "accelerate", "peft",
                    "onnx", "onnxruntime", "numpy", "scikit-learn")


def output_versions() -> dict[str, str | None]:
    """Versions of :data:`OUTPUT_LIBRARIES` (None when absent)."""
    return _versions(OUTPUT_LIBRARIES)


def host_info() -> dict[str, Any]:
    """The machine a run happened on."""
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": _cpu_model(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        info["cuda"] = torch.cuda.is_available()
        if info["cuda"]:
            info["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # the torch-free runtime also records its host
        pass
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def now_iso() -> str:
    """Current UTC time, ISO 8601, seconds precision."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def write_text(path: str | os.PathLike, text: str) -> None:
    """Write UTF-8 text atomically (temp file + rename): readers see the old file or the new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, data: Any) -> None:
    """Write JSON atomically (temp file + rename), pretty-printed, UTF-8."""
    write_text(path, json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")


def check_output_dir(out: str | os.PathLike, *, overwrite: bool = False, kind: str | None = None) -> Path:
    """Refuse an output folder that already holds files, unless ``overwrite``. With ``kind``, the
    folder is replaced as a whole, so ``overwrite`` applies only to a folder whose manifest.json says
    it is edgebert's output of that kind: a folder of other files is never deleted."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"Output path '{out}' exists and is a file, not a folder.")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise OutputExistsError(
                f"Output folder '{out}' already holds files (another run?). "
                "Choose another --out, or pass --overwrite to replace it."
            )
        if kind is not None and manifest_kind(out) != kind:
            raise OutputExistsError(not_ours_message(out, f"{kind} output"))
    return out


def manifest_kind(folder: str | os.PathLike) -> str | None:
    """The ``kind`` that ``folder/manifest.json`` records, None where there is none or it is unreadable."""
    try:
        data = json.loads((Path(folder) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data.get("kind") if isinstance(data, dict) else None


def not_ours_message(out: Path, what: str) -> str:
    return (f"Output folder '{out}' holds files that are not an edgebert {what} (no manifest.json of that "
            "kind). --overwrite replaces only edgebert's own output folders, never other files: choose another "
            "--out, or empty or delete that folder yourself.")


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike) -> Iterator[Path]:
    """Yield a staging folder beside ``out``; on success it replaces ``out`` in one rename.

    On any exception the staging folder is removed and ``out`` is left as it was.
    """
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
