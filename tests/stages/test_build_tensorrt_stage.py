"""The build-tensorrt stage: run through the pipeline (the engine deferred where TensorRT is absent), its
graph checks, its key naming the host, and what a deferred engine deploys."""

import json
import stat

import pytest

from conftest import run_recipe, run_stage

from edgebert.errors import MissingDependencyError

RECIPE = [{"kind": "export-onnx", "fuse": False}, {"kind": "build-tensorrt", "precision": "fp16"}]


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_stage_runs_and_is_recorded(arch, request, tmp_path):
    from edgebert.export.tensorrt import tensorrt_available

    rec, files, out = run_stage(request, tmp_path, "build-tensorrt", RECIPE, arch)
    assert "build_engine.sh" in files and "model.onnx" in files
    script = out / "model" / "build_engine.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    text = script.read_text()
    assert "--fp16" in text and "input_ids:1x1" in text and "input_ids:32x128" in text  # cpu target: max_batch 32
    if not tensorrt_available():
        assert rec["metrics"]["engine"].startswith("deferred")
        manifest = json.loads((out / "manifest.json").read_text())
        assert "build_engine.sh" in manifest["deploy"]["engine"]


def test_tensorrt_required_but_missing_is_a_clear_error(tmp_path, tiny_classifier_dir, tiny_sentiment_dir):
    from edgebert.export.tensorrt import tensorrt_available

    if tensorrt_available():
        pytest.skip("TensorRT is installed here")
    stages = [{"kind": "export-onnx", "fuse": False}, {"kind": "build-tensorrt", "require": True}]
    with pytest.raises(MissingDependencyError, match="TensorRT not installed"):
        run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages, target="jetson")
    assert not (tmp_path / "art").exists()  # refused before any stage ran: no export made first


def test_tensorrt_stage_refuses_a_graph_the_device_could_not_build(tmp_path, tiny_classifier_dir, tiny_sentiment_dir,
                                                                   monkeypatch):
    """Even where the recipe check is bypassed (fused graph into build-tensorrt), the stage inspects the ONNX
    with onnx alone before it writes build_engine.sh, also where TensorRT is absent."""
    from edgebert.errors import ExportError
    from edgebert.stages import registry

    # order_problem, not check_order: plan.py holds its own reference to check_order
    monkeypatch.setattr(registry, "order_problem", lambda *args, **kwargs: None)
    stages = [{"kind": "export-onnx", "fuse": True}, {"kind": "build-tensorrt", "precision": "fp16"}]
    with pytest.raises(ExportError, match="onnxruntime-only operators"):
        run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages, target="jetson")
    assert not list((tmp_path / "art").rglob("build_engine.sh"))


def test_tensorrt_stage_key_names_the_host(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, monkeypatch):
    """A run deferred where TensorRT is absent is not reused where it is (nor an engine across GPUs)."""
    from edgebert.stages import build_tensorrt

    stages = [{"kind": "export-onnx", "fuse": False}, {"kind": "build-tensorrt", "precision": "fp16"}]
    run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages, target="jetson")
    again = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages, target="jetson")
    assert again.ran == []
    monkeypatch.setattr(build_tensorrt, "_tensorrt_host", lambda cfg: "tensorrt 10.3.0 on Orin")
    moved = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages, target="jetson")
    assert moved.ran == ["02-build-tensorrt"]


def test_deferred_engine_deploys_what_runs_now(tmp_path, tiny_classifier_dir, tiny_sentiment_dir):
    """server-gpu without TensorRT: deploy names the fp32 ONNX as what runs now (not as fp16 TensorRT),
    the target's TensorRT fp16, and the fp16 PyTorch fallback."""
    from edgebert.export.tensorrt import tensorrt_available

    if tensorrt_available():
        pytest.skip("TensorRT is installed here: the engine is built, nothing is deferred")
    stages = [{"kind": "export-onnx", "fuse": False}, {"kind": "build-tensorrt"},
              {"kind": "export-pytorch", "dtype": "float16"}]
    result = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages, target="server-gpu")
    deploy = result.manifest["deploy"]
    assert deploy["model"] == "model/model.onnx" and deploy["format"] == "onnx"
    assert (deploy["runtime"], deploy["precision"]) == ("onnxruntime", "fp32")
    assert (deploy["target_runtime"], deploy["target_precision"]) == ("tensorrt", "fp16")
    assert deploy["fallback"] == {"runtime": "pytorch", "model": "model/model.safetensors", "precision": "fp16"}
    report = (result.out / "report.md").read_text()
    assert "(onnxruntime, fp32); the target runs tensorrt fp16 once model/build_engine.sh" in report
    assert "fallback `model/model.safetensors` (pytorch, fp16)" in report
    from edgebert.bench.variants import discover

    # bench checks the target's budgets on what it deploys: the ONNX file and the fp16 checkpoint's folder
    budgets = {v.name: v.budgets for v in discover(result.out)}
    assert budgets["art/model"] == budgets["art/model.onnx"] == {"target": "server-gpu", "latency_ms": 2,
                                                                "memory_mb": 4096}


@pytest.mark.tensorrt
def test_tensorrt_engine_is_built_and_validated(tmp_path, tiny_classifier_dir, tiny_sentiment_dir):
    pytest.importorskip("tensorrt", reason="TensorRT not installed")
    stages = [{"kind": "export-onnx", "fuse": False}, {"kind": "build-tensorrt", "precision": "fp16", "require": True}]
    result = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages, target="jetson")
    rec = result.manifest["stages"][-1]
    assert rec["metrics"]["engine"] == "built" and (result.out / "model" / "model.plan").is_file()
    assert rec["validation"]["label_agreement"] >= 0.99
