"""Stages that write deployable files: ONNX, TorchScript / torch.export, ORT (mobile), TensorRT,
and the PyTorch checkpoint itself (the server-GPU fallback).

Every export is validated against the model it came from on real dev sentences (each alone at its
own length, then padded batches): the largest logit difference and the label agreement are recorded
in the manifest, and an export beyond the stage's tolerance fails the run (ExportValidationError)
rather than shipping a model that answers differently.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from edgebert.config import StageConfig
from edgebert.errors import ConfigError, ExportValidationError, MissingDependencyError
from edgebert.stages.registry import Artifact, RunContext, StageResult, register_stage
from edgebert.stages.train import _ref


class ExportOnnxConfig(StageConfig):
    """Export to ONNX (legacy TorchScript-based exporter, dynamic batch and sequence axes), then fuse."""

    kind: Literal["export-onnx"] = "export-onnx"
    opset: int = Field(17, ge=17, le=21, description="ONNX opset version")
    fuse: bool = Field(
        True, description="Fuse into onnxruntime's transformer operators (Attention, SkipLayerNorm, BiasGelu, "
                          "EmbedLayerNorm); off for TensorRT and mobile, which fuse themselves")
    opt_level: Literal[0, 1, 2, 99] = Field(
        1, description="onnxruntime graph optimization level applied while fusing (1 keeps the graph portable)")
    max_logit_diff: float = Field(1e-3, gt=0, description="Largest allowed |PyTorch - ONNX| logit difference")
    min_label_agreement: float = Field(
        0.99, ge=0, le=1, description="Smallest allowed share of texts on which PyTorch and ONNX pick the same label")
    max_length: int = Field(128, ge=8, le=8192, description="Token cap of the validation inputs")


class ExportTorchScriptConfig(StageConfig):
    """Export to TorchScript (trace + freeze, dynamic sequence length) or torch.export (.pt2)."""

    kind: Literal["export-torchscript"] = "export-torchscript"
    format: Literal["torchscript", "pt2"] = Field(
        "torchscript", description="torchscript: model.pt (torch.jit, deprecated upstream but widely deployed); "
                                   "pt2: model.pt2 (torch.export)")
    max_logit_diff: float = Field(1e-3, gt=0, description="Largest allowed |eager - exported| logit difference")
    min_label_agreement: float = Field(0.99, ge=0, le=1, description="Smallest allowed label agreement with eager")
    max_length: int = Field(128, ge=8, le=8192, description="Token cap of the validation inputs")


class ExportMobileConfig(StageConfig):
    """Convert the current ONNX model to ONNX Runtime's .ort format for ONNX Runtime Mobile."""

    kind: Literal["export-mobile"] = "export-mobile"
    style: Literal["Fixed", "Runtime"] = Field(
        "Fixed", description="Fixed: optimizations baked in for the target platform; Runtime: applied on the device")
    target_platform: Literal["arm", "amd64"] = Field("arm", description="CPU family of the phones (arm) or amd64")
    check_usability: bool = Field(True, description="Run onnxruntime's mobile usability checker (NNAPI / CoreML)")


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


class ExportPyTorchConfig(StageConfig):
    """Save the current PyTorch model (Hugging Face folder) as a deployable, optionally in half precision."""

    kind: Literal["export-pytorch"] = "export-pytorch"
    dtype: Literal["float32", "float16", "bfloat16"] = Field(
        "float32", description="Weight dtype of the saved checkpoint (float16 for GPUs without TensorRT)")
    max_logit_diff: float = Field(0.05, gt=0, description="Largest allowed |fp32 - saved| logit difference")
    compile: Literal["auto", "on", "off"] = Field(
        "auto", description="torch.compile for the deployed checkpoint: auto measures eager vs compiled on the GPU "
                            "compress runs on and enables it where it is compile_min_speedup faster (no GPU: not "
                            "tried); on measures and enables it on any device; off never. The decision, with the "
                            "measurement, goes to torch_compile.json beside the checkpoint")
    compile_mode: Literal["default", "reduce-overhead", "max-autotune"] = Field(
        "default", description="torch.compile mode (reduce-overhead: CUDA graphs, for small batches on GPUs)")
    compile_min_speedup: float = Field(
        1.1, ge=1.0, description="auto enables torch.compile only when its batch-1 median is this many times faster")
    compile_samples: int = Field(32, ge=1, le=1024, description="Dev sentences timed (each at its own length)")


def _check(report: dict[str, Any], max_diff: float, min_agree: float, what: str) -> None:
    if report["max_abs_logit_diff"] > max_diff or report["label_agreement"] < min_agree:
        raise ExportValidationError(
            f"The {what} disagrees with the model it came from: max |logit diff| "
            f"{report['max_abs_logit_diff']:.2e} (allowed {max_diff:.0e}), label agreement "
            f"{report['label_agreement']:.3f} (needed {min_agree:.3f}) on {report['n']} dev texts."
        )


def _dev(ctx: RunContext, label_names: list[str]):
    return ctx.dataset.with_labels(label_names).split("dev")


def onnx_dev_accuracy(path, tokenizer, dev, max_length: int = 128) -> float:
    from edgebert.compress.quantize import onnx_accuracy_fn

    return onnx_accuracy_fn(tokenizer, dev.texts, dev.labels, pairs=dev.text_pairs, max_length=max_length)(str(path))


def _check_export_onnx(cfg: ExportOnnxConfig, shape: dict[str, Any]) -> None:
    """Fusion knows BERT and ALBERT graphs only: say so before any work, not after distillation."""
    from edgebert.export.fuse import FUSABLE_MODEL_TYPES

    if cfg.fuse and shape["model_type"] not in FUSABLE_MODEL_TYPES:
        raise ConfigError(
            f"fuse: onnxruntime's transformer fusion supports model types {', '.join(FUSABLE_MODEL_TYPES)}; this "
            f"model is '{shape['model_type']}'. Use a recipe whose export-onnx stage has 'fuse: false' (--recipe FILE).")


@register_stage(ExportOnnxConfig, reads="torch", changes="onnx", check=_check_export_onnx,
                summary="Export to ONNX (opset >= 17, dynamic axes), validate, fuse transformer ops")
def export_onnx(art: Artifact, cfg: ExportOnnxConfig, ctx: RunContext) -> StageResult:
    from edgebert import models
    from edgebert.export.fuse import fuse_onnx, fusion_params, model_file_bytes
    from edgebert.export.onnx import export_onnx as run_export
    from edgebert.export.onnx import validate_onnx

    loaded = models.load(_ref(art, art.model))
    inputs = ctx.validation_inputs()
    plain = run_export(loaded.model, loaded.tokenizer, ctx.work / "plain.onnx", opset=cfg.opset)
    validation = {"plain": validate_onnx(loaded.model, loaded.tokenizer, plain, **inputs, max_length=cfg.max_length)}
    _check(validation["plain"], cfg.max_logit_diff, cfg.min_label_agreement, "ONNX export")
    final = plain
    metrics: dict[str, Any] = {"plain_bytes": model_file_bytes(plain)}
    if cfg.fuse:
        fused = ctx.work / "model.onnx"
        report = fuse_onnx(plain, fused, opt_level=cfg.opt_level, **fusion_params(loaded.model))
        validation["fused"] = validate_onnx(loaded.model, loaded.tokenizer, fused, **inputs, max_length=cfg.max_length)
        _check(validation["fused"], cfg.max_logit_diff, cfg.min_label_agreement, "fused ONNX model")
        metrics["fusion"] = report
        final = fused
    else:
        final = plain.rename(ctx.work / "model.onnx")
    dev = _dev(ctx, loaded.label_names)
    metrics["dev_accuracy"] = onnx_dev_accuracy(final, loaded.tokenizer, dev, cfg.max_length)
    metrics["bytes"] = model_file_bytes(final)
    plain_rel = art.rel(ctx.work / "plain.onnx") if cfg.fuse else art.rel(final)
    result = validation.get("fused", validation["plain"])
    return StageResult(
        art.replace(onnx=art.rel(final), onnx_reference=art.rel(final), onnx_fused=cfg.fuse, onnx_plain=plain_rel,
                    deploy={**art.deploy, "model.onnx": art.rel(final)}, primary=art.primary or "model.onnx"),
        metrics=metrics, validation={**result, "stages": validation})


@register_stage(ExportTorchScriptConfig, reads="torch", changes="export",
                summary="Trace + freeze to TorchScript (model.pt) or torch.export (model.pt2), validated")
def export_torchscript(art: Artifact, cfg: ExportTorchScriptConfig, ctx: RunContext) -> StageResult:
    from edgebert import models
    from edgebert.compress.quantize import torch_quantize_dynamic
    from edgebert.evaluation import score
    from edgebert.export.torchscript import export_pt2, export_torchscript as run_export, validate_torchscript

    loaded = models.load(_ref(art, art.model))
    model = loaded.model.eval()
    if art.torch_quantization:
        model = torch_quantize_dynamic(model, per_channel=bool(art.torch_quantization.get("per_channel")))
    name = "model.pt" if cfg.format == "torchscript" else "model.pt2"
    path = ctx.work / name
    if cfg.format == "torchscript":
        run_export(model, loaded.tokenizer, path)
    else:
        export_pt2(model, loaded.tokenizer, path)
    validation = validate_torchscript(model, loaded.tokenizer, path, **ctx.validation_inputs(),
                                      max_length=cfg.max_length)
    _check(validation, cfg.max_logit_diff, cfg.min_label_agreement, f"{cfg.format} export")
    metrics = {"bytes": path.stat().st_size, "torch_quantization": art.torch_quantization}
    if art.torch_quantization:
        dev = _dev(ctx, loaded.label_names)
        metrics["dev_accuracy"] = score(model, loaded.tokenizer, dev, loaded.label_names)["accuracy"]
    return StageResult(art.replace(deploy={**art.deploy, name: art.rel(path)}, primary=art.primary or name),
                       metrics=metrics, validation=validation)


@register_stage(ExportMobileConfig, reads="onnx", changes="export",
                summary="Convert the ONNX model to .ort for ONNX Runtime Mobile, with its operator config")
def export_mobile(art: Artifact, cfg: ExportMobileConfig, ctx: RunContext) -> StageResult:
    from edgebert import models
    from edgebert.export.mobile import export_mobile as run_export

    tokenizer = models.load_tokenizer(_ref(art, art.model))
    src = art.path(art.onnx)
    onnx = ctx.work / "model.onnx"
    shutil.copyfile(src, onnx)  # the .ort file is named after its source
    report = run_export(onnx, ctx.work, style=cfg.style, target_platform=cfg.target_platform, tokenizer=tokenizer,
                        **ctx.validation_inputs(), check_usability=cfg.check_usability)
    onnx.unlink()
    ort = ctx.work / Path(report["ort_path"]).name
    config = ctx.work / Path(report["config_path"]).name
    validation = {k: report[k] for k in ("max_abs_logit_diff", "label_agreement")}
    metrics = {"bytes": report["ort_bytes"], "onnx_bytes": report["onnx_bytes"],
               "required_operators": report["required_operators"], "usability": report.get("usability")}
    # The app ships the .ort only; the ONNX file stays where build_engine.sh needs it.
    deploy = {k: v for k, v in art.deploy.items() if not k.endswith(".onnx") or "build_engine.sh" in art.deploy}
    deploy.update({"model.ort": art.rel(ort), "required_operators.config": art.rel(config)})
    deploy.update({name: art.rel(path) for name, path in _app_guide(ctx.work).items()})
    return StageResult(art.replace(deploy=deploy, primary="model.ort"), metrics=metrics, validation=validation)


#: the integration guide and app samples shipped in a mobile artifact (name in model/ -> source file)
APP_FILES = {"INTEGRATION.md": ("docs", "mobile.md"),
             "EdgebertClassifier.kt": ("examples", "android/EdgebertClassifier.kt"),
             "EdgebertClassifier.swift": ("examples", "ios/EdgebertClassifier.swift")}


def _app_guide(work) -> dict[str, Any]:
    """Copy docs/mobile.md and the Kotlin / Swift samples beside the .ort model (where installed)."""
    from edgebert.targets import source_dir

    out = {}
    for name, (folder, rel) in APP_FILES.items():
        src = source_dir(folder) / rel
        if src.is_file():
            shutil.copyfile(src, work / name)
            out[name] = work / name
    return out


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


@register_stage(BuildTensorRTConfig, reads="onnx", changes="export", resolve=_resolve_tensorrt,
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
    _check(validation, cfg.max_logit_diff, 0.99, "TensorRT engine")
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
    tokenizer = models.load_tokenizer(_ref(art, art.model))
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


def _compile_device(cfg: ExportPyTorchConfig) -> str | None:
    """The device type the torch.compile decision is made for (part of the stage's key), None when off."""
    if cfg.compile == "off":
        return None
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@register_stage(ExportPyTorchConfig, reads="torch", changes="export",
                summary="Save the PyTorch checkpoint as a deployable (fp16 for GPUs without TensorRT)",
                host=lambda cfg: _compile_device(cfg))  # looked up at call time: tests stand in for a GPU host
def export_pytorch(art: Artifact, cfg: ExportPyTorchConfig, ctx: RunContext) -> StageResult:
    import torch

    from edgebert import models
    from edgebert.evaluation import predict_logits

    loaded = models.load(_ref(art, art.model))
    dev = _dev(ctx, loaded.label_names)
    sample = ctx.validation_rows(dev)
    ref = predict_logits(loaded.model, loaded.tokenizer, sample)
    dtype = getattr(torch, cfg.dtype)
    model = loaded.model.to(dtype)
    out = ctx.work / "pytorch"
    model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    got = predict_logits(model, loaded.tokenizer, sample)  # half precision runs on CPU too (slowly)
    import numpy as np

    validation = {"n": len(sample), "max_abs_logit_diff": float(np.abs(ref - got).max()),
                  "label_agreement": float((ref.argmax(-1) == got.argmax(-1)).mean())}
    _check(validation, cfg.max_logit_diff, 0.99, f"{cfg.dtype} checkpoint")
    metrics = {"dtype": cfg.dtype, "bytes": sum(p.stat().st_size for p in out.iterdir() if p.is_file())}
    decision = _compile_decision(model, loaded.tokenizer, sample, cfg, ctx)
    if decision is not None:
        from edgebert.artifact import write_json
        from edgebert.export.torch_compile import COMPILE_FILE

        write_json(out / COMPILE_FILE, decision)
        metrics["torch_compile"] = decision
    files = {p.name: art.rel(p) for p in out.iterdir() if p.is_file()}
    return StageResult(art.replace(deploy={**art.deploy, **files}, primary=art.primary or "model.safetensors"),
                       metrics=metrics, validation=validation)


def _compile_decision(model, tokenizer, sample, cfg: ExportPyTorchConfig, ctx: RunContext):
    """``torch_compile.json``'s content ({device type: decision}), or None when compile is off.

    Measured on CUDA when a GPU is here (auto and on), on the CPU only when ``compile: on``: auto
    does not spend minutes compiling on a CPU host for a GPU deployment it cannot speak for.
    """
    import torch

    from edgebert.export.torch_compile import decide, measure

    if cfg.compile == "off":
        return None
    device = torch.device(_compile_device(cfg))
    common = dict(policy=cfg.compile, min_speedup=cfg.compile_min_speedup, max_logit_diff=cfg.max_logit_diff,
                  mode=cfg.compile_mode)
    if device.type == "cpu" and cfg.compile == "auto":
        entry = decide(None, **common)
        entry["reason"] = ("not measured: no CUDA device where compress ran (auto measures on GPUs only; "
                           "compile: on measures on this CPU)")
        return {"cpu": entry}
    texts = list(sample.texts)[: cfg.compile_samples]
    pairs = list(sample.text_pairs)[: cfg.compile_samples] if getattr(sample, "text_pairs", None) else None
    ctx.log(f"    timing eager vs torch.compile ({cfg.compile_mode}) on {device.type}, {len(texts)} sentences")
    try:
        measured, error = measure(model, tokenizer, texts, pairs=pairs, device=device, mode=cfg.compile_mode), None
    except Exception as exc:  # noqa: BLE001 - inductor / triton / compiler failures of every kind
        measured, error = None, f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    finally:
        torch._dynamo.reset()  # drop the compiled graphs (and CUDA-graph pools) held for this process
        try:
            model.to("cpu")
        except Exception:  # noqa: BLE001 - a broken CUDA context: the checkpoint is already saved
            pass
    return {device.type: decide(measured, error=error, **common)}
