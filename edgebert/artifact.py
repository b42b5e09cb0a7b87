"""Artifact folders and manifests: hashing, environment facts, atomic writes.

Every command that writes a folder (``finetune``, later ``compress``) builds it in a sibling
staging folder and renames it into place only when complete, so a failed or interrupted run never
leaves a half-written folder where a finished one is expected.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import hashlib
import json
import os
import platform
import shutil
import socket
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

from edgebert.errors import DiskFullError, OutputExistsError, OutputNotWritableError


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
        "onnxruntime", "optimum", "optimum-onnx", "openvino", "nncf", "tensorrt", "numpy", "scikit-learn",
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


#: CPU features that decide which int8 / fp16 kernels onnxruntime picks (recorded with every run and bench)
FLAGS_OF_INTEREST = ("avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni",
                     "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "neon", "asimd", "asimddp",
                     "sve", "i8mm", "bf16")


def cpu_flags() -> list[str]:
    """The CPU's feature flags (x86 ``flags`` / ARM ``Features`` of /proc/cpuinfo)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key = line.split(":", 1)[0].strip().lower()
            if key in ("flags", "features"):
                return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


def flags_of_interest(flags: Sequence[str] | None = None) -> dict[str, bool]:
    """Which of :data:`FLAGS_OF_INTEREST` the CPU has."""
    have = set(cpu_flags() if flags is None else flags)
    return {f: f in have for f in FLAGS_OF_INTEREST}


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
    """Write UTF-8 text atomically (temp file + rename): readers see the old file or the new one.

    The file keeps the mode of the one it replaces, else gets the umask's (0644 under umask 022), as
    ``open`` would give it: mkstemp's temp files are owner-only. A full disk raises DiskFullError.
    """
    path = Path(path)
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError:
        mode = 0o666 & ~umask()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise _output_error(exc, path.parent) from exc
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if is_disk_full(exc, path.parent):
            raise disk_full_error(path, written=len(text.encode("utf-8"))) from exc
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
    check_writable(out, replaced=kind is not None)
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
def staged_dir(out: str | os.PathLike, *, needs_bytes: int | None = None) -> Iterator[Path]:
    """Yield a staging folder beside ``out``; on success it replaces ``out`` in one rename.

    On any exception the staging folder is removed and ``out`` is left as it was; a full disk is
    reported as DiskFullError naming ``out`` and the space it needs (``needs_bytes``: an estimate
    of what ``out`` will hold, where the caller knows one).
    """
    out = Path(out).resolve()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        os.chmod(stage, 0o777 & ~umask())  # mkdtemp's folders are owner-only; the result is an ordinary folder
    except OSError as exc:
        raise _output_error(exc, out.parent) from exc
    try:
        yield stage
    except BaseException as exc:
        full = is_disk_full(exc, stage)
        written = tree_bytes(stage) + (exc.written if isinstance(exc, DiskFullError) else 0)
        shutil.rmtree(stage, ignore_errors=True)
        if full:  # named after this folder (an inner one may be a staging folder the user never sees)
            raise disk_full_error(out, written=written, needs=needs_bytes) from exc
        raise
    _share_as_umask(stage)
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(stage, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _share_as_umask(folder: Path) -> None:
    """Give what a library wrote owner-only the permissions the umask gives any new file or folder
    (0644 / 0755 under umask 022): safetensors 0.8 writes 0600 files, whatever the umask, and an
    artifact built in a container must be readable by the host user. Modes with group or other bits
    were chosen by their writer and are kept, and so are those of hard-linked files (shared with
    another path, maybe one that is not ours)."""
    mask = umask()
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode) or mode & 0o077 or (stat.S_ISREG(st.st_mode) and st.st_nlink > 1):
                continue
            owner = mode & 0o700
            os.chmod(path, (owner | owner >> 3 | owner >> 6) & ~mask)


def umask() -> int:
    """The process's umask, read without changing it where Linux reports it (/proc), else set and restored."""
    try:
        for line in Path("/proc/self/status").read_text(encoding="ascii").splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def check_writable(path: str | os.PathLike, *, replaced: bool = False, option: str = "--out",
                   hint: str | None = None) -> None:
    """Refuse, before any work, an output that cannot be written.

    ``path`` is a folder to be created (with missing parents) and written into, or a file to be
    written; with ``replaced`` it is replaced as a whole by a rename (:func:`staged_dir`), so its
    parent is what gets written. The nearest existing folder on the way must be writable.
    ``option`` is the command-line option that chose ``path``; ``hint`` replaces the message's
    "Choose another OPTION ..." where choosing another path is not the way out.
    """
    p = Path(path).expanduser().absolute()
    probe = p.parent if replaced else p
    while not os.path.lexists(probe) and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        if probe == p:
            return  # the output itself is a file: the caller reports that (or overwrites a file it may)
        raise OutputNotWritableError(f"Cannot create '{path}': '{probe}' is a file, not a folder. "
                                     f"{hint or f'Choose another {option}.'}")
    if not os.access(probe, os.W_OK | os.X_OK, effective_ids=os.access in os.supports_effective_ids):
        raise OutputNotWritableError(_not_writable_message(path, probe, option, hint))


def _not_writable_message(path: str | os.PathLike, folder: Path, option: str, hint: str | None = None) -> str:
    where = f"'{folder}'" if Path(path).absolute() == folder else f"'{folder}' (where '{path}' goes)"
    return (f"Cannot write to {where}: permission denied or a read-only file system. "
            + (hint or f"Choose another {option} in a folder you can write to."))


def _output_error(exc: OSError, folder: Path, option: str = "--out") -> Exception:
    """A typed error for an OSError raised while creating an output (the OSError itself where none fits)."""
    if isinstance(exc, PermissionError) or exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return OutputNotWritableError(_not_writable_message(folder, Path(folder).absolute(), option))
    if is_disk_full(exc, folder):
        return disk_full_error(folder, written=0)
    return exc


_DISK_FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT}
# What libraries say when the disk fills, where they raise their own exception types: safetensors
# (SafetensorError "...No space left on device..." / "StorageFull"), onnx and torch pass strerror on.
_DISK_FULL_TEXTS = ("No space left on device", "Disk quota exceeded", "StorageFull")


def is_disk_full(exc: BaseException, folder: str | os.PathLike | None = None) -> bool:
    """Whether ``exc`` (or an exception it was raised from) means the disk or the quota is full.

    torch's writers report only "file write failed" (the C++ error has no errno): that counts when
    ``folder``'s disk has less than 1 MiB free.
    """
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, DiskFullError):
            return True
        if isinstance(e, OSError) and e.errno in _DISK_FULL_ERRNOS:
            return True
        text = str(e)
        if any(t in text for t in _DISK_FULL_TEXTS):
            return True
        if folder is not None and "write failed" in text and _free_bytes(folder) < 2**20:
            return True
        e = e.__cause__ or e.__context__
    return False


def tree_bytes(folder: str | os.PathLike) -> int:
    """Bytes of the files under ``folder`` (0 where it is gone)."""
    total = 0
    for root, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def _free_bytes(path: str | os.PathLike) -> int:
    p = Path(path).absolute()
    while not p.exists() and p != p.parent:
        p = p.parent
    try:
        return shutil.disk_usage(p).free
    except OSError:
        return 0


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def disk_full_error(out: str | os.PathLike, *, written: int, needs: int | None = None) -> DiskFullError:
    """DiskFullError naming ``out``, what was written before the disk filled (removed again) and what is free."""
    free = _free_bytes(out)
    need = f"more than {_mib(written)}" if written else "more space"
    if needs and needs > written:
        need = f"about {_mib(needs)}"
    return DiskFullError(
        f"No space left on the device while writing '{out}': it needs {need}, and {_mib(free)} is free there "
        "now (what was written was removed; nothing half-written is left). Free some space or choose an --out "
        "on a larger disk, then run the same command again.", written=written)
