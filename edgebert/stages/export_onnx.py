"""The ``export-onnx`` stage: export to ONNX (opset >= 17, dynamic axes), validate against PyTorch on real dev
sentences (each alone, then padded batches), then fuse onnxruntime's transformer operators and validate again.
An export beyond the stage's tolerance fails the run (ExportValidationError) rather than shipping a model
that answers differently."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from edgebert.config import StageConfig
from edgebert.errors import ConfigError
from edgebert.stages._shared import check_export, dev_split, onnx_dev_accuracy
from edgebert.stages.registry import Artifact, RunContext, StageResult, forbids, model_ref, register_stage


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


def _check_export_onnx(cfg: ExportOnnxConfig, shape: dict[str, Any]) -> None:
    """Fusion knows BERT and ALBERT graphs only: say so before any work, not after distillation."""
    from edgebert.export.fuse import FUSABLE_MODEL_TYPES

    if cfg.fuse and shape["model_type"] not in FUSABLE_MODEL_TYPES:
        raise ConfigError(
            f"fuse: onnxruntime's transformer fusion supports model types {', '.join(FUSABLE_MODEL_TYPES)}; this "
            f"model is '{shape['model_type']}'. Use a recipe whose export-onnx stage has 'fuse: false' (--recipe FILE).")


_RULES = (
    forbids("torch:int8", "{here} after torch-int8-dynamic (stage {at}): torch's quantized modules do not export to "
                          "ONNX. Quantize the ONNX model instead (mode int8-dynamic after export-onnx)."),
    forbids("onnx", "{here}: the recipe already exports ONNX at stage {at}."),
)


@register_stage(ExportOnnxConfig, order=60, reads="torch", changes="onnx", check=_check_export_onnx, rules=_RULES,
                produces=lambda cfg: ("export", "onnx:fused" if cfg.fuse else "onnx:fp32"),
                summary="Export to ONNX (opset >= 17, dynamic axes), validate, fuse transformer ops")
def export_onnx(art: Artifact, cfg: ExportOnnxConfig, ctx: RunContext) -> StageResult:
    from edgebert import models
    from edgebert.export.fuse import fuse_onnx, fusion_params, model_file_bytes
    from edgebert.export.onnx import export_onnx as run_export
    from edgebert.export.onnx import validate_onnx

    loaded = models.load(model_ref(art, art.model))
    inputs = ctx.validation_inputs()
    plain = run_export(loaded.model, loaded.tokenizer, ctx.work / "plain.onnx", opset=cfg.opset)
    validation = {"plain": validate_onnx(loaded.model, loaded.tokenizer, plain, **inputs, max_length=cfg.max_length)}
    check_export(validation["plain"], cfg.max_logit_diff, cfg.min_label_agreement, "ONNX export")
    final = plain
    metrics: dict[str, Any] = {"plain_bytes": model_file_bytes(plain)}
    if cfg.fuse:
        fused = ctx.work / "model.onnx"
        report = fuse_onnx(plain, fused, opt_level=cfg.opt_level, **fusion_params(loaded.model))
        validation["fused"] = validate_onnx(loaded.model, loaded.tokenizer, fused, **inputs, max_length=cfg.max_length)
        check_export(validation["fused"], cfg.max_logit_diff, cfg.min_label_agreement, "fused ONNX model")
        metrics["fusion"] = report
        final = fused
    else:
        final = plain.rename(ctx.work / "model.onnx")
    dev = dev_split(ctx, loaded.label_names)
    metrics["dev_accuracy"] = onnx_dev_accuracy(final, loaded.tokenizer, dev, cfg.max_length)
    metrics["bytes"] = model_file_bytes(final)
    plain_rel = art.rel(ctx.work / "plain.onnx") if cfg.fuse else art.rel(final)
    result = validation.get("fused", validation["plain"])
    return StageResult(
        art.replace(onnx=art.rel(final), onnx_reference=art.rel(final), onnx_fused=cfg.fuse, onnx_plain=plain_rel,
                    deploy={**art.deploy, "model.onnx": art.rel(final)}, primary=art.primary or "model.onnx"),
        metrics=metrics, validation={**result, "stages": validation})
