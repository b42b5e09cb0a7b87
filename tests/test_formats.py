"""edgebert.formats: the one suffix -> format -> runtime table, and the precision readers."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pytest

from edgebert import formats
from edgebert.manifest import engine_file_precision, engine_precision
from edgebert.formats import (
    DEPLOYABLE_SUFFIXES,
    file_runtime,
    format_of,
    onnx_precision,
    safetensors_precision,
    torchscript_precision,
)

PACKAGE = Path(formats.__file__).resolve().parent


def test_each_suffix_has_one_format_and_runtime():
    suffixes = [s for f in formats.FORMATS for s in f.suffixes]
    assert len(suffixes) == len(set(suffixes))
    assert all(s.startswith(".") and s == s.lower() for s in suffixes)
    assert format_of("out/model/model.onnx").name == "onnx" and format_of("m.ORT").name == "ort"
    assert format_of("model.pt").runtime == "torchscript" and format_of("model.plan").runtime == "tensorrt"
    assert format_of("model.pt2").name == "torch-export" and format_of("model.safetensors").name == "pytorch"
    assert format_of("model.bin") is None and format_of("README") is None
    # what the runtime (and bench) run by themselves, in the order messages list them
    assert DEPLOYABLE_SUFFIXES == (".onnx", ".ort", ".pt", ".pth", ".torchscript", ".plan", ".engine")
    assert [file_runtime(f"m{s}") for s in (".onnx", ".ort", ".pth", ".engine")] == [
        "onnxruntime", "onnxruntime", "torchscript", "tensorrt"]
    assert file_runtime("m.pt2") is None and file_runtime("m.safetensors") is None  # PyTorch needs the folder


def _table_literals(tree: ast.AST, known: set[str]):
    """Tuple / list / set / dict literals naming two or more model file suffixes."""
    for node in ast.walk(tree):
        elements = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
        if isinstance(node, (ast.Tuple, ast.List, ast.Set, ast.Dict)) and elements:
            named = {e.value.lower() for e in elements
                     if isinstance(e, ast.Constant) and isinstance(e.value, str) and e.value.lower() in known}
            if len(named) >= 2:
                yield node.lineno, sorted(named)


def test_the_suffix_table_exists_once():
    """No module but edgebert/formats.py spells a table of model file suffixes (the runtime, bench and
    the deploy block each had their own copy, which could disagree)."""
    known = {s for f in formats.FORMATS for s in f.suffixes}
    copies = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "formats.py" and path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        copies += [f"{path.relative_to(PACKAGE)}:{line} {names}" for line, names in _table_literals(tree, known)]
    assert not copies, "suffix tables outside edgebert/formats.py:\n" + "\n".join(copies)


def _onnx_file(path: Path, *, dtype=np.float32, op: str = "MatMul") -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.ones((4, 2), dtype=dtype), "w")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])
    graph = helper.make_graph([helper.make_node(op, ["x", "w"], ["y"])], "g", [x], [y], [weight])
    onnx.save(helper.make_model(graph), str(path))
    return path


def test_onnx_precision(tmp_path):
    assert onnx_precision(_onnx_file(tmp_path / "a.onnx")) == "fp32"
    assert onnx_precision(_onnx_file(tmp_path / "b.onnx", dtype=np.float16)) == "fp16"
    assert onnx_precision(_onnx_file(tmp_path / "c.onnx", op="MatMulInteger")) == "int8"
    (tmp_path / "d.onnx").write_bytes(b"not a graph")
    assert onnx_precision(tmp_path / "d.onnx") == "unknown"
    assert onnx_precision(tmp_path / "model.ort") == "unknown"  # a flatbuffer: read from its .onnx


def test_safetensors_and_torchscript_precision(tmp_path):
    import torch
    from safetensors.numpy import save_file

    save_file({"a": np.ones(2, np.float16), "b": np.ones(2, np.float16)}, str(tmp_path / "h.safetensors"))
    save_file({"a": np.ones(2, np.float16), "b": np.ones(2, np.float32)}, str(tmp_path / "m.safetensors"))
    save_file({"a": np.ones(2, np.float32), "ids": np.ones(2, np.int64)}, str(tmp_path / "f.safetensors"))
    assert [safetensors_precision(tmp_path / f"{n}.safetensors") for n in "hmf"] == ["fp16", "mixed", "fp32"]
    linear = torch.nn.Linear(2, 2)
    assert torchscript_precision(linear) == "fp32" and torchscript_precision(linear.half()) == "fp16"
    assert torchscript_precision(torch.nn.ReLU()) == "unknown"


def test_engine_precision_from_the_manifest(tmp_path):
    manifest = {"stages": [{"kind": "build-tensorrt", "metrics": {"precision": "fp16"}},
                           {"kind": "build-tensorrt", "metrics": {"precision": "int8"}},
                           {"kind": "export-onnx", "metrics": {"precision": "fp32"}}]}
    assert engine_precision(manifest) == "int8" and engine_precision({"stages": []}) is None
    (tmp_path / "model").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    assert engine_file_precision(tmp_path / "model" / "model.plan") == "int8"  # the artifact's, one folder up
    assert engine_file_precision(tmp_path / "elsewhere" / "x" / "model.plan") == "unknown"
    (tmp_path / "manifest.json").write_text("{")
    assert engine_file_precision(tmp_path / "model" / "model.plan") == "unknown"


@pytest.mark.parametrize("name", ["runtime/classifier.py", "bench/variants.py", "deploy.py"])
def test_readers_of_file_names_use_the_table(name):
    """The modules that had their own copy import the table instead."""
    tree = ast.parse((PACKAGE / name).read_text(encoding="utf-8"))
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "edgebert.formats" in imported
