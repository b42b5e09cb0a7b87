"""edgebert.export.tensorrt: the trtexec build script (always), graph checks and the missing-TensorRT
error (without TensorRT), and real engine builds (``-m tensorrt``, only where ``import tensorrt`` works)."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from edgebert.errors import ConfigError, ExportError, MissingDependencyError
from edgebert.export.tensorrt import tensorrt_available

NAMES = ["input_ids", "attention_mask", "token_type_ids"]
SHAPES = {"min": (1, 8), "opt": (4, 64), "max": (16, 128)}
needs_tensorrt = pytest.mark.skipif(not tensorrt_available(), reason="TensorRT not installed")


@pytest.fixture(scope="module")
def tiny_onnx(tiny_classifier_dir, tmp_path_factory):
    """(loaded tiny BERT classifier, folder holding its plain ONNX export as model.onnx)."""
    from edgebert import models
    from edgebert.export import export_onnx

    loaded = models.load(str(tiny_classifier_dir))
    folder = tmp_path_factory.mktemp("trt")
    export_onnx(loaded.model, loaded.tokenizer, folder / "model.onnx")
    return loaded, folder


# -- build script ------------------------------------------------------------------------------

@pytest.mark.parametrize("precision", ["fp16", "int8", "fp32"])
def test_build_script(tiny_onnx, precision, tmp_path):
    from edgebert.export import write_build_script
    from edgebert.export.tensorrt import layernorm_node_names

    _, folder = tiny_onnx
    out = tmp_path / "deploy"
    out.mkdir()
    shutil.copy(folder / "model.onnx", out / "model.onnx")
    path = write_build_script("model.onnx", "model.plan", out, shapes=SHAPES, precision=precision, input_names=NAMES)
    assert path == out / "build_engine.sh"
    assert os.access(path, os.X_OK)
    text = path.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text
    assert "--onnx=model.onnx" in text and "--saveEngine=model.plan" in text
    for flag, (b, s) in (("min", SHAPES["min"]), ("opt", SHAPES["opt"]), ("max", SHAPES["max"])):
        spec = ",".join(f"{n}:{b}x{s}" for n in NAMES)
        assert f"--{flag}Shapes={spec}" in text
    assert "--timingCacheFile=timing.cache" in text and "--memPoolSize=workspace:1024M" in text
    assert ("--fp16" in text) == (precision != "fp32")
    assert ("--int8" in text) == (precision == "int8")
    assert ("--noTF32" in text) == (precision == "fp32")
    norms = layernorm_node_names(out / "model.onnx")
    assert len(norms) == 5  # embeddings + 2 per layer
    if precision != "fp32":  # LayerNorm pinned to fp32, every one of them
        assert "--precisionConstraints=obey" in text
        for name in norms:
            assert f"{name}:fp32" in text
    else:
        assert "--precisionConstraints" not in text
    assert "on the target device" in text.lower()
    assert '"$@"' in text  # extra trtexec flags pass through
    check = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr


def test_build_script_runs_trtexec_with_its_flags(tmp_path):
    """Run the script with a stand-in trtexec that records its arguments."""
    from edgebert.export import write_build_script

    fake = tmp_path / "trtexec"
    fake.write_text('#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$(dirname "$0")/args.txt"\n')
    fake.chmod(0o755)
    path = write_build_script("model.onnx", "model.plan", tmp_path / "d", shapes=SHAPES, precision="fp16",
                              input_names=NAMES[:2], fp32_layers=["/ln/LayerNormalization"])
    run = subprocess.run([str(path), "--verbose"], capture_output=True, text=True,
                         env={**os.environ, "TRTEXEC": str(fake)})
    assert run.returncode == 0, run.stderr
    args = (tmp_path / "args.txt").read_text().splitlines()
    assert args[:2] == ["--onnx=model.onnx", "--saveEngine=model.plan"]
    assert "--minShapes=input_ids:1x8,attention_mask:1x8" in args
    assert "--layerPrecisions=/ln/LayerNormalization:fp32" in args and args[-1] == "--verbose"
    missing = subprocess.run([str(path)], capture_output=True, text=True,
                             env={**os.environ, "TRTEXEC": str(tmp_path / "nope")})
    assert missing.returncode == 1 and "trtexec not found" in missing.stderr


def test_build_script_rejects_bad_input(tmp_path):
    from edgebert.export import write_build_script

    with pytest.raises(ConfigError, match="min <= opt <= max"):
        write_build_script("m.onnx", "m.plan", tmp_path, shapes={"min": (1, 64), "opt": (1, 8), "max": (1, 128)},
                           precision="fp16", input_names=NAMES)
    with pytest.raises(ConfigError, match="missing max"):
        write_build_script("m.onnx", "m.plan", tmp_path, shapes={"min": (1, 8), "opt": (1, 8)},
                           precision="fp16", input_names=NAMES)
    with pytest.raises(ConfigError, match="precision must be one of fp32, fp16, int8"):
        write_build_script("m.onnx", "m.plan", tmp_path, shapes=SHAPES, precision="bf16", input_names=NAMES)
    with pytest.raises(ConfigError, match="input_names is empty"):
        write_build_script("m.onnx", "m.plan", tmp_path, shapes=SHAPES, precision="fp16", input_names=[])


# -- without TensorRT --------------------------------------------------------------------------

@pytest.mark.skipif(tensorrt_available(), reason="TensorRT is installed")
def test_missing_tensorrt_is_a_clear_error(tiny_onnx, tmp_path):
    from edgebert.export import build_engine

    _, folder = tiny_onnx
    with pytest.raises(MissingDependencyError, match="tensorrt is not installed") as info:
        build_engine(folder / "model.onnx", tmp_path / "m.plan", min_shape=(1, 8), opt_shape=(4, 64),
                     max_shape=(16, 128))
    assert "TensorRT not installed" in str(info.value) and "edgebert[tensorrt]" in str(info.value)
    assert not (tmp_path / "m.plan").exists()


def test_graph_checks_come_before_tensorrt(tiny_onnx, tmp_path):
    """Graphs TensorRT cannot take are refused with advice, whether or not TensorRT is installed."""
    import onnx

    from edgebert.compress.quantize import calibration_feeds, quantize_onnx
    from edgebert.export import build_engine, fuse_onnx, fusion_params

    loaded, folder = tiny_onnx
    shapes = dict(min_shape=(1, 8), opt_shape=(4, 64), max_shape=(16, 128))
    fuse_onnx(folder / "model.onnx", tmp_path / "fused.onnx", **fusion_params(loaded.model))
    with pytest.raises(ExportError, match="onnxruntime-only operators .*SkipLayerNormalization"):
        build_engine(tmp_path / "fused.onnx", tmp_path / "m.plan", **shapes)
    with pytest.raises(ExportError, match="explicitly quantized"):
        build_engine(folder / "model.onnx", tmp_path / "m.plan", precision="int8", **shapes)
    feeds = calibration_feeds(loaded.tokenizer, ["i love it", "awful film", "great", "boring"], NAMES, batch_size=2)
    quantize_onnx(folder / "model.onnx", tmp_path / "asym.onnx", mode="int8-static",
                  calibration_feeds=feeds)  # uint8 activations: not for TensorRT
    with pytest.raises(ExportError, match="symmetric"):
        build_engine(tmp_path / "asym.onnx", tmp_path / "m.plan", precision="int8", **shapes)
    with pytest.raises(ConfigError, match="min <= opt <= max"):
        build_engine(folder / "model.onnx", tmp_path / "m.plan", min_shape=(4, 8), opt_shape=(1, 8), max_shape=(8, 8))
    with pytest.raises(ExportError, match="does not exist"):
        build_engine(tmp_path / "missing.onnx", tmp_path / "m.plan", **shapes)
    assert onnx.load(str(tmp_path / "asym.onnx"))  # the refused file itself is fine for onnxruntime


# -- with TensorRT -----------------------------------------------------------------------------

@pytest.mark.tensorrt
@needs_tensorrt
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_build_engine(tiny_onnx, precision, tmp_path):
    import onnxruntime as ort

    from edgebert.export import build_engine, onnx_feeds
    from edgebert.export.tensorrt import run_engine

    loaded, folder = tiny_onnx
    cache = tmp_path / "timing.cache"
    report = build_engine(folder / "model.onnx", tmp_path / "model.plan", min_shape=(1, 4), opt_shape=(2, 16),
                          max_shape=(4, 64), precision=precision, timing_cache=cache)
    assert (tmp_path / "model.plan").stat().st_size == report["plan_bytes"] > 0
    assert cache.is_file() and cache.stat().st_size > 0
    assert report["inputs"] == NAMES
    assert (len(report["fp32_layers"]) > 0) == (precision == "fp16")
    # a second build reuses the timing cache
    build_engine(folder / "model.onnx", tmp_path / "again.plan", min_shape=(1, 4), opt_shape=(2, 16),
                 max_shape=(4, 64), precision=precision, timing_cache=cache)
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device to run the engine on")
    enc = loaded.tokenizer(["i love this movie", "awful"], padding="longest", return_tensors="np")
    feeds = onnx_feeds(NAMES, dict(enc))
    got = run_engine(tmp_path / "model.plan", feeds)["logits"]
    session = ort.InferenceSession(str(folder / "model.onnx"), providers=["CPUExecutionProvider"])
    ref = session.run(["logits"], feeds)[0]
    assert np.abs(got - ref).max() < (1e-3 if precision == "fp32" else 2e-2)


@pytest.mark.tensorrt
@pytest.mark.gpu
@needs_tensorrt
def test_bench_times_the_engine_beside_its_onnx(tiny_onnx, tiny_sentiment_dir, tmp_path):
    """edgebert bench --device cuda on an engine: it loads once, scores the split and agrees with the
    ONNX model it was built from (batch 1, real lengths within the profile; scoring batches of 20
    rows exceed the profile's maximum batch of 8 and run in chunks)."""
    import json

    import torch

    from edgebert.bench import bench
    from edgebert.export import build_engine

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device to run the engine on")
    loaded, folder = tiny_onnx
    model = tmp_path / "m"
    model.mkdir()
    shutil.copy(folder / "model.onnx", model / "model.onnx")
    build_engine(model / "model.onnx", model / "model.plan", min_shape=(1, 1), opt_shape=(1, 32), max_shape=(8, 128),
                 precision="fp32")
    loaded.tokenizer.save_pretrained(model)
    (model / "labels.json").write_text(json.dumps({"labels": [loaded.model.config.id2label[i] for i in
                                                              sorted(loaded.model.config.id2label)]}))
    bench([str(model / "model.onnx"), str(model / "model.plan")], str(tiny_sentiment_dir), split="dev",
          out=tmp_path / "b", rounds=1, warmup=2, latency_samples=8, memory=False, progress=False, device="cuda")
    variants = {v["runtime"]: v for v in json.loads((tmp_path / "b" / "bench.json").read_text())["variants"]}
    engine = variants["tensorrt"]
    assert engine["status"] == "ok" and engine["latency"]["p50"] > 0
    assert engine["accuracy"]["accuracy"] == pytest.approx(variants["onnxruntime"]["accuracy"]["accuracy"], abs=0.02)


@pytest.mark.tensorrt
@needs_tensorrt
def test_build_int8_engine_from_qdq(tiny_onnx, tmp_path):
    from edgebert.compress.quantize import calibration_feeds, quantize_onnx
    from edgebert.export import build_engine

    loaded, folder = tiny_onnx
    feeds = calibration_feeds(loaded.tokenizer, ["i love it", "awful film", "great", "boring"], NAMES, batch_size=2)
    quantize_onnx(folder / "model.onnx", tmp_path / "qdq.onnx", mode="int8-static", symmetric=True,
                  calibration_feeds=feeds)
    report = build_engine(tmp_path / "qdq.onnx", tmp_path / "int8.plan", min_shape=(1, 4), opt_shape=(2, 16),
                          max_shape=(4, 64), precision="int8")
    assert report["precision"] == "int8" and report["plan_bytes"] > 0


def test_inspect_reads_external_zero_points_beside_the_model(tiny_onnx, tmp_path, monkeypatch):
    """Zero points stored in model.onnx.data (large per-channel models) are read from the model's folder,
    whatever the working directory."""
    import onnx

    from edgebert.compress.quantize import calibration_feeds, quantize_onnx
    from edgebert.export.tensorrt import _inspect_onnx

    loaded, folder = tiny_onnx
    feeds = calibration_feeds(loaded.tokenizer, ["i love it", "awful film", "great", "boring"], NAMES, batch_size=2)
    for name, symmetric in (("asym", False), ("sym", True)):
        quantize_onnx(folder / "model.onnx", tmp_path / f"{name}.onnx",
                      mode="int8-static", symmetric=symmetric, calibration_feeds=feeds)
        external = tmp_path / name / "model.onnx"
        external.parent.mkdir()
        model = onnx.load(str(tmp_path / f"{name}.onnx"))
        for init in model.graph.initializer:  # raw bytes, which is what goes to the external file
            init.CopyFrom(onnx.numpy_helper.from_array(onnx.numpy_helper.to_array(init), init.name))
        onnx.save(model, str(external), save_as_external_data=True, all_tensors_to_one_file=True,
                  location="model.onnx.data", size_threshold=0)
        zps = [i for i in onnx.load(str(external), load_external_data=False).graph.initializer
               if i.name.endswith("zero_point")]
        assert zps and all(onnx.external_data_helper.uses_external_data(z) for z in zps)
    monkeypatch.chdir(tmp_path)  # nothing named model.onnx.data here
    with pytest.raises(ExportError, match="symmetric"):
        _inspect_onnx(tmp_path / "asym" / "model.onnx", "int8")
    assert _inspect_onnx(tmp_path / "sym" / "model.onnx", "int8") == NAMES
