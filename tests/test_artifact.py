"""Output folders and files: writability checked before work, a full disk reported, the umask honoured."""

from __future__ import annotations

import errno
import os
import stat

import pytest

from edgebert.artifact import check_output_dir, check_writable, staged_dir, write_json, write_text
from edgebert.errors import DiskFullError, OutputNotWritableError


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture()
def umask():
    """Set the process umask for one test (restored after)."""
    old = os.umask(0o022)
    os.umask(old)

    def set_(mask: int) -> None:
        os.umask(mask)

    yield set_
    os.umask(old)


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o002, 0o664, 0o775),
                                                       (0o077, 0o600, 0o700)])
def test_outputs_follow_the_umask(tmp_path, umask, mask, file_mode, dir_mode):
    umask(mask)
    with staged_dir(tmp_path / "out") as stage:
        write_json(stage / "manifest.json", {"a": 1})
        write_text(stage / "report.md", "# r\n")
    assert mode(tmp_path / "out") == dir_mode
    assert mode(tmp_path / "out" / "manifest.json") == file_mode
    assert mode(tmp_path / "out" / "report.md") == file_mode


def test_files_a_library_wrote_owner_only_follow_the_umask(tmp_path, umask):
    """safetensors 0.8 writes 0600 files whatever the umask; what a writer chose with group bits is kept."""
    import numpy as np
    from safetensors.numpy import save_file

    umask(0o022)
    with staged_dir(tmp_path / "out") as stage:
        save_file({"w": np.zeros(2, dtype=np.float32)}, str(stage / "model.safetensors"))
        (stage / "sub").mkdir(mode=0o700)
        (stage / "sub" / "build.sh").write_text("#!/bin/sh\n")
        (stage / "sub" / "build.sh").chmod(0o700)
        (stage / "shared.txt").write_text("x")
        (stage / "shared.txt").chmod(0o640)
    out = tmp_path / "out"
    assert (mode(out / "model.safetensors"), mode(out / "sub"), mode(out / "sub" / "build.sh"),
            mode(out / "shared.txt")) == (0o644, 0o755, 0o755, 0o640)


def test_a_replaced_file_keeps_its_mode(tmp_path, umask):
    umask(0o022)
    path = tmp_path / "manifest.json"
    write_json(path, {"a": 1})
    path.chmod(0o640)
    write_json(path, {"a": 2})
    assert mode(path) == 0o640


def test_check_writable_refuses_a_read_only_folder(read_only_dir, tmp_path):
    with pytest.raises(OutputNotWritableError, match=rf"Cannot write to '{read_only_dir}' \(where .*new/out.*\).*"
                                                     r"Choose another --out"):
        check_writable(read_only_dir / "new" / "out")
    with pytest.raises(OutputNotWritableError, match="Cannot write to"):
        check_writable(read_only_dir / "out", replaced=True)
    with pytest.raises(OutputNotWritableError, match="Cannot write to"):  # check_output_dir (finetune, bench) asks
        check_output_dir(read_only_dir / "out")
    assert list(read_only_dir.iterdir()) == []
    check_writable(tmp_path / "a" / "b")  # missing parents under a writable folder are fine
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputNotWritableError, match="is a file, not a folder"):
        check_writable(tmp_path / "file" / "out")


@pytest.mark.parametrize("error", [
    OSError(errno.ENOSPC, "No space left on device"),
    "safetensors",  # what save_pretrained raises when the disk fills
    RuntimeError("[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0: No space left on device"),
])
def test_a_full_disk_is_reported_and_nothing_is_left(tmp_path, error):
    if error == "safetensors":
        from safetensors import SafetensorError

        error = SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                                'message: "No space left on device" })')
    out = tmp_path / "out"
    with pytest.raises(DiskFullError, match=rf"No space left on the device while writing '{out}': it needs about "
                                            r"5\.0 MiB, and .* MiB is free there"):
        with staged_dir(out, needs_bytes=5 * 2**20) as stage:
            (stage / "weights").write_bytes(b"x" * 2**20)
            raise error
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_names_the_outer_folder_and_what_was_written(tmp_path):
    out = tmp_path / "stages" / "01-finetune"
    with pytest.raises(DiskFullError, match=rf"while writing '{out}': it needs more than 3\.0 MiB") as info:
        with staged_dir(out) as stage:
            (stage / "a").write_bytes(b"x" * 2**20)
            with staged_dir(stage / "model") as inner:
                (inner / "b").write_bytes(b"x" * 2 * 2**20)
                raise OSError(errno.ENOSPC, "No space left on device")
    assert info.value.written == 3 * 2**20
    assert list((tmp_path / "stages").iterdir()) == []


def test_write_text_reports_a_full_disk_and_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "manifest.json"
    write_text(path, "old\n")

    def full(*args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(DiskFullError, match="manifest.json"):
        write_text(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["manifest.json"]


def test_text_files_are_replaced_atomically(tmp_path, monkeypatch):
    import os

    from edgebert.artifact import write_text

    path = tmp_path / "report.md"
    write_text(path, "old\n")
    monkeypatch.setattr(os, "replace", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        write_text(path, "new\n")
    monkeypatch.undo()
    assert path.read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["report.md"]
    write_text(path, "new\n")
    assert path.read_text() == "new\n"
