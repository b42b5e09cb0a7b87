"""Packaging: what the Jetson image copies is what pyproject.toml needs to build edgebert."""

from __future__ import annotations

import glob
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib", reason="tomllib is in the standard library from Python 3.11")
ROOT = Path(__file__).resolve().parents[1]


def _copied(dockerfile: Path) -> set[str]:
    """Source paths of the COPY lines before the image's `pip install .`."""
    copied: set[str] = set()
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        if line.startswith("RUN") and 'pip install ".' in line:
            break
        if line.startswith("COPY "):
            copied.update(line.split()[1:-1])
    return copied


def _covered(path: str, copied: set[str]) -> bool:
    parts = Path(path).parts
    return any(Path(c).parts == parts[: len(Path(c).parts)] for c in copied)


def test_jetson_image_copies_every_file_the_build_reads():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    copied = _copied(ROOT / "Dockerfile.jetson")
    needed = ["pyproject.toml", project["project"]["readme"], "edgebert"]
    for patterns in project["tool"]["setuptools"]["data-files"].values():
        for pattern in patterns:
            matches = glob.glob(pattern, root_dir=ROOT)
            assert matches, f"pyproject data-files pattern {pattern!r} matches no file"
            needed += matches
    missing = [p for p in needed if not _covered(p, copied)]
    assert not missing, f"Dockerfile.jetson does not COPY {missing} before installing edgebert (copies {sorted(copied)})"


def test_jetson_image_runs_edgebert():
    text = (ROOT / "Dockerfile.jetson").read_text(encoding="utf-8")
    assert 'ENTRYPOINT ["edgebert"]' in text
    assert "FROM nvcr.io/nvidia/l4t-jetpack" in text
    # torch pinned to the Jetson index's CUDA build (PyPI's newer aarch64 wheel is CPU-only), kept by a
    # constraint file, and the build fails if a CPU-only torch or onnxruntime got in anyway
    assert '--no-deps --index-url ${JETSON_INDEX} "torch==${TORCH_VERSION}"' in text and "ENV PIP_CONSTRAINT=" in text
    assert "assert torch.version.cuda" in text and "'CUDAExecutionProvider' in p" in text


# -- the base install is the runtime; the training side is the train extra ----------------------------

def _names(requirements: list[str]) -> list[str]:
    """Distribution names of PEP 508 requirements, lower-cased (extras and versions dropped)."""
    import re

    return [re.split(r"[\s\[<>=!~;]", r, maxsplit=1)[0].lower() for r in requirements]


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def test_base_install_is_the_runtime_without_torch():
    """pip install edgebert on a device: the runtime's packages and none of the training side."""
    from edgebert.deps import TRAINING_PACKAGES

    base = set(_names(_project()["dependencies"]))
    assert {"onnxruntime", "tokenizers", "numpy", "click", "pydantic", "starlette", "uvicorn"} <= base
    assert not base & set(TRAINING_PACKAGES), f"training packages in the base install: {base & set(TRAINING_PACKAGES)}"


def test_train_extra_is_what_the_training_commands_check_for():
    from edgebert.deps import TRAINING_PACKAGES

    extras = _project()["optional-dependencies"]
    assert sorted(_names(extras["train"])) == sorted(TRAINING_PACKAGES)
    # the README's development install (.[dev,optimum]) must bring the whole training side, and every
    # extra that only makes sense with training pulls it in
    for extra in ("dev", "lora", "optimum", "tensorrt", "openvino"):
        assert any(r.replace(" ", "").startswith("edgebert[") and "train" in r for r in extras[extra]), extra


def test_jetson_image_installs_the_training_side():
    text = (ROOT / "Dockerfile.jetson").read_text(encoding="utf-8")
    assert 'pip install ".[train,optimum]"' in text
