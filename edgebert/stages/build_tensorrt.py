"""The ``build-tensorrt`` stage: a TensorRT engine (fp16 / int8 Q/DQ, LayerNorm in fp32) where TensorRT is
installed, validated against onnxruntime; always a build_engine.sh that builds it on the device."""

from __future__ import annotations

import shutil
from typing import Any, Literal

from pydantic import Field

from edgebert.config import StageConfig
from edgebert.errors import MissingDependencyError
from edgebert.stages._shared import NEEDS_ONNX, check_export
from edgebert.stages.registry import Artifact, RunContext, StageResult, forbids, model_ref, register_stage, requires


class BuildTensorRTConfig(StageConfig):
    """Build a TensorRT engine where TensorRT is installed; always write build_engine.sh for the device."""

    kind: Literal["build-tensorrt"] = "build-tensorrt"
    precision: Literal["fp32", "fp16", "int8"] | None = Field(
        None, description="Engine precision (None: the target's); int8 needs an int8-static symmetric quantize first")
    min_shape: tuple[int, int] | None = Field(None, description="(batch, sequence) minimum (None: from the target)")
    opt_shape: tuple[int, int] | None = Field(None, description="(batch, sequence) optimum (None: from the target)")
    max_shape: tuple[int, int] | None = Field(None, description="(batch, sequence) maximum (None: from the target)")
    workspace_mb: int = Field(1024, ge=1, description="Builder scratch memory cap, MiB")
    require: bool = Field(
        False, description="Fail when TensorRT is not installed (default: write build_engine.sh and build on the device)")
    max_logit_diff: float = Field(0.05, gt=0, description="Largest allowed |onnxruntime - engine| logit difference")


def _resolve_tensorrt(cfg: BuildTensorRTConfig, target) -> BuildTensorRTConfig:
    shapes = target.shapes.trt()
    update: dict[str, Any] = {}
    for key in ("min", "opt", "max"):
        if getattr(cfg, f"{key}_shape") is None:
            update[f"{key}_shape"] = shapes[key]
    if cfg.precision is None:
        update["precision"] = target.precision if target.precision in ("fp16", "int8", "fp32") else "fp16"
    return cfg.model_copy(update=update)


def _tensorrt_host(cfg: BuildTensorRTConfig) -> str:
    """What of this host a TensorRT stage's output depends on (part of its key): whether TensorRT is
    here, its version and the GPU, so that a run deferred on a host without TensorRT builds the engine
    when resumed where TensorRT is, and an engine built on one GPU is not reused on another."""
    from edgebert.export.tensorrt import tensorrt_available

    if not tensorrt_available():
        return "tensorrt: not installed"
    import tensorrt  # pragma: no cover - GPU hosts
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA device"
    return f"tensorrt {tensorrt.__version__} on {gpu}"


def _check_tensorrt(cfg: BuildTensorRTConfig, shape: dict[str, Any]) -> None:
    """``require: true`` without TensorRT fails before any stage runs (not after fine-tuning and export)."""
    from edgebert.export.tensorrt import tensorrt_available

    if cfg.require and not tensorrt_available():
        raise MissingDependencyError(
            "tensorrt", None, "build a TensorRT engine (build-tensorrt with require: true). TensorRT not installed: "
            "install it (JetPack / NVIDIA's tensorrt wheels) or drop 'require' to build on the device with build_engine.sh")


def _rules(cfg: BuildTensorRTConfig) -> tuple:
    """What TensorRT can parse: no onnxruntime-only integer ops or fused operators, symmetric int8 Q/DQ
    only, and explicit Q/DQ for an int8 engine."""
    int8 = (requires("onnx:int8-qdq", "{here}: an int8 engine needs explicit Q/DQ: put 'quantize' with mode "
                                      "int8-static, symmetric: true before it (TensorRT 10 deprecates implicit "
                                      "calibration)."),) if cfg.precision == "int8" else ()
    return (NEEDS_ONNX,
            forbids("onnx:int8", "{here}: TensorRT cannot parse the {cfg.mode} model of stage {at} (onnxruntime-only "
                                 "integer ops). For an int8 engine quantize with mode int8-static, symmetric: true "
                                 "(Q/DQ); for fp16 leave the ONNX model in fp32 (TensorRT converts it)."),
            forbids("onnx:int8-qdq:asymmetric", "{here}: TensorRT takes only symmetric int8 Q/DQ (int8, zero point "
                                                "0); set symmetric: true and weight_type: s8 on the quantize of stage "
                                                "{at}."),
            *int8,
            forbids("onnx:fused", "{here}: TensorRT cannot parse onnxruntime's fused operators (Attention, "
                                  "SkipLayerNorm); set 'fuse: false' on export-onnx (stage {at})."),
            forbids("onnx:text-in", "{here}: TensorRT cannot parse the onnxruntime-extensions tokenizer operators of "
                                    "stage {at} ('text-in'); leave text-in out of a TensorRT recipe."))


@register_stage(BuildTensorRTConfig, order=90, reads="onnx", changes="export", resolve=_resolve_tensorrt,
                produces=("export", "tensorrt"), rules=_rules,
                host=lambda cfg: _tensorrt_host(cfg), check=_check_tensorrt,  # host looked up at call time (tests)
                summary="TensorRT engine (fp16 / int8 Q/DQ, LayerNorm in fp32) + build_engine.sh for the device")
def build_tensorrt(art: Artifact, cfg: BuildTensorRTConfig, ctx: RunContext) -> StageResult:
    from edgebert.export.tensorrt import _inspect_onnx, build_engine, tensorrt_available, write_build_script

    src = art.path(art.onnx)
    onnx = ctx.work / "model.onnx"
    shutil.copyfile(src, onnx)
    if src.with_name(src.name + ".data").exists():
        shutil.copyfile(src.with_name(src.name + ".data"), ctx.work / "model.onnx.data")
    # what TensorRT would refuse (onnxruntime-only operators, asymmetric int8), checked here with onnx alone, so
    # that build_engine.sh is never written for a model the device cannot build
    names = _inspect_onnx(onnx, cfg.precision)
    shapes = {"min": tuple(cfg.min_shape), "opt": tuple(cfg.opt_shape), "max": tuple(cfg.max_shape)}
    script = write_build_script("model.onnx", "model.plan", ctx.work, shapes=shapes, precision=cfg.precision,
                                input_names=names, workspace_mb=cfg.workspace_mb)
    deploy = {**art.deploy, "model.onnx": art.rel(onnx), "build_engine.sh": art.rel(script)}
    metrics: dict[str, Any] = {"precision": cfg.precision, "shapes": shapes, "script": script.name}
    if not tensorrt_available():
        _check_tensorrt(cfg, {})  # compress checked it before any stage ran; the stage alone checks again
        metrics["engine"] = "deferred: TensorRT not installed here; run model/build_engine.sh on the device"
        return StageResult(art.replace(deploy=deploy, primary=art.primary or "model.onnx"), metrics=metrics,
                           validation=None)
    plan = ctx.work / "model.plan"
    report = build_engine(onnx, plan, min_shape=shapes["min"], opt_shape=shapes["opt"], max_shape=shapes["max"],
                          precision=cfg.precision, timing_cache=ctx.work / "timing.cache", workspace_mb=cfg.workspace_mb)
    validation = _validate_engine(onnx, plan, ctx, art)
    check_export(validation, cfg.max_logit_diff, 0.99, "TensorRT engine")
    metrics.update(engine="built", build=report)
    deploy["model.plan"] = art.rel(plan)
    return StageResult(art.replace(deploy=deploy, primary="model.plan"), metrics=metrics, validation=validation)


def _validate_engine(onnx_path, plan_path, ctx: RunContext, art: Artifact) -> dict[str, Any]:  # pragma: no cover - GPU
    import numpy as np

    from edgebert import models
    from edgebert.data import encode_texts
    from edgebert.export.onnx import _session, comparison_report, onnx_feeds
    from edgebert.export.tensorrt import Engine

    engine = Engine(plan_path)
    tokenizer = models.load_tokenizer(model_ref(art, art.model))
    session = _session(onnx_path)
    names = [i.name for i in session.get_inputs()]
    ref1, got1, lengths = [], [], []
    inputs = ctx.validation_inputs()
    for i, text in enumerate(inputs["texts"]):
        pair = None if inputs["pairs"] is None else [inputs["pairs"][i]]
        # truncated to the engine's profile (the target's max_length), which it refuses to exceed
        feeds = onnx_feeds(names, dict(encode_texts(tokenizer, [text], pair, truncation=True,
                                                    max_length=engine.max_length, return_tensors="np")))
        lengths.append(int(feeds[names[0]].shape[1]))
        ref1.append(np.asarray(session.run(None, feeds)[0])[0])
        got1.append(engine.logits(engine(feeds))[0])
    return comparison_report(ref1, got1, [np.stack(ref1)], [np.stack(got1)], lengths)
