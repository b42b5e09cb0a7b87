"""edgebert.runtime.backends: one place opens onnxruntime sessions, for the device runtime and bench alike."""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import edgebert
from edgebert.runtime.backends import OnnxBackend, open_session, session_options

ARTIFACT = Path(__file__).resolve().parents[1] / "data" / "tiny-artifact"
PACKAGE = Path(edgebert.__file__).resolve().parent


def _entry(options, key: str) -> str | None:
    try:
        return options.get_session_config_entry(key)
    except Exception:  # onnxruntime raises for an entry that was never set
        return None


def _settings(options) -> dict:
    return {"intra": options.intra_op_num_threads, "inter": options.inter_op_num_threads,
            "mode": options.execution_mode, "opt": options.graph_optimization_level,
            "log": options.log_severity_level,
            "spin": [_entry(options, f"session.{k}.allow_spinning") for k in ("intra_op", "inter_op")]}


def test_session_options():
    options = session_options(3, {"session.qdqisint8allowed": "1"})
    assert _settings(options) == {"intra": 3, "inter": 1, "mode": ort.ExecutionMode.ORT_SEQUENTIAL,
                                  "opt": ort.GraphOptimizationLevel.ORT_ENABLE_ALL, "log": 3, "spin": ["0", "0"]}
    assert _entry(options, "session.qdqisint8allowed") == "1"
    assert session_options().intra_op_num_threads == 0  # onnxruntime's default: one per core
    session = open_session(ARTIFACT / "model" / "model.onnx")
    assert session.get_providers() == ["CPUExecutionProvider"]


def test_bench_opens_the_session_the_device_runtime_opens(monkeypatch):
    """bench times what a device runs: its ONNX runner gets the classifier's backend and session options."""
    from edgebert.bench.variants import OnnxRunner, VariantSpec
    from edgebert.runtime import Classifier

    real, opened = ort.InferenceSession, []

    def spy(path, options=None, *args, **kwargs):
        opened.append(_settings(options))
        return real(path, options, *args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", spy)
    clf = Classifier.load(ARTIFACT, threads=2)
    spec = VariantSpec(name="m", kind="onnx", runtime="onnxruntime", path=str(ARTIFACT / "model" / "model.onnx"),
                       tokenizer_dir=str(ARTIFACT / "tokenizer"), label_names=list(clf.labels))
    runner = OnnxRunner(spec, threads=2)
    assert len(opened) == 2 and opened[0] == opened[1], opened
    assert isinstance(clf._backend, OnnxBackend) and isinstance(runner.backend, OnnxBackend)
    enc = {"input_ids": np.asarray([[2, 40, 3]]), "attention_mask": np.asarray([[1, 1, 1]])}
    prepared = runner.prepare(enc)
    assert list(prepared) == runner.input_names  # token_type_ids filled with zeros, as the runtime does
    np.testing.assert_allclose(runner.logits(runner(prepared)), clf._backend(prepared), rtol=1e-6)


def _edgebert_imports(folder: Path):
    """(file, line, module) of every edgebert import under ``folder``, deferred ones included."""
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module and not node.level
                     else [])
            for name in names:
                if name.startswith("edgebert."):
                    yield path.relative_to(PACKAGE), node.lineno, name


# The runtime is the base of the run side: it reads errors, formats (and the manifest) only, so a device
# install needs nothing else. edgebert.data.files: its CSV / JSONL readers for `predict --file` (torch-free);
# edgebert.metrics: the out-of-scope metrics of calibrate (numpy only).
RUNTIME_MAY_IMPORT = ("edgebert.errors", "edgebert.formats", "edgebert.manifest", "edgebert.runtime",
                      "edgebert.data.files", "edgebert.metrics")


def test_the_runtime_imports_no_higher_layer():
    """runtime/ must not reach into export/ (the TensorRT engine runner lived there), bench, stages, ..."""
    wrong = [f"{f}:{line} imports {name}" for f, line, name in _edgebert_imports(PACKAGE / "runtime")
             if not name.startswith(RUNTIME_MAY_IMPORT)]
    assert not wrong, "\n".join(wrong)


def test_export_keeps_the_engine_names():
    from edgebert.export import tensorrt as export_trt
    from edgebert.runtime.backends import tensorrt as runtime_trt

    assert export_trt.Engine is runtime_trt.Engine and export_trt.run_engine is runtime_trt.run_engine
    assert export_trt.tensorrt_available is runtime_trt.tensorrt_available


def test_missing_provider_is_refused():
    from edgebert.errors import RuntimeLoadError

    with pytest.raises(RuntimeLoadError, match="not available in this onnxruntime build"):
        OnnxBackend.load(ARTIFACT / "model" / "model.onnx", threads=1, providers=["NoSuchExecutionProvider"])
