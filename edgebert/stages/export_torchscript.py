"""The ``export-torchscript`` stage: trace + freeze to TorchScript (model.pt) or torch.export (model.pt2),
validated against eager PyTorch; a pending torch-int8-dynamic quantization is applied here."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgebert.config import StageConfig
from edgebert.stages._shared import check_export, dev_split
from edgebert.stages.registry import Artifact, RunContext, StageResult, model_ref, register_stage


class ExportTorchScriptConfig(StageConfig):
    """Export to TorchScript (trace + freeze, dynamic sequence length) or torch.export (.pt2)."""

    kind: Literal["export-torchscript"] = "export-torchscript"
    format: Literal["torchscript", "pt2"] = Field(
        "torchscript", description="torchscript: model.pt (torch.jit, deprecated upstream but widely deployed); "
                                   "pt2: model.pt2 (torch.export)")
    max_logit_diff: float = Field(1e-3, gt=0, description="Largest allowed |eager - exported| logit difference")
    min_label_agreement: float = Field(0.99, ge=0, le=1, description="Smallest allowed label agreement with eager")
    max_length: int = Field(128, ge=8, le=8192, description="Token cap of the validation inputs")


@register_stage(ExportTorchScriptConfig, order=70, reads="torch", changes="export", produces=("export",),
                summary="Trace + freeze to TorchScript (model.pt) or torch.export (model.pt2), validated")
def export_torchscript(art: Artifact, cfg: ExportTorchScriptConfig, ctx: RunContext) -> StageResult:
    from edgebert import models
    from edgebert.compress.quantize import torch_quantize_dynamic
    from edgebert.evaluation import score
    from edgebert.export.torchscript import export_pt2, export_torchscript as run_export, validate_torchscript

    loaded = models.load(model_ref(art, art.model))
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
    check_export(validation, cfg.max_logit_diff, cfg.min_label_agreement, f"{cfg.format} export")
    metrics = {"bytes": path.stat().st_size, "torch_quantization": art.torch_quantization}
    if art.torch_quantization:
        dev = dev_split(ctx, loaded.label_names)
        metrics["dev_accuracy"] = score(model, loaded.tokenizer, dev, loaded.label_names)["accuracy"]
    return StageResult(art.replace(deploy={**art.deploy, name: art.rel(path)}, primary=art.primary or name),
                       metrics=metrics, validation=validation)
