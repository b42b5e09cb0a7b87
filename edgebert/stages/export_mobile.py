"""The ``export-mobile`` stage: convert the current ONNX model to .ort for ONNX Runtime Mobile, with its
operator config, the integration guide and the app samples."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from edgebert.config import StageConfig
from edgebert.stages._shared import NEEDS_ONNX
from edgebert.stages.registry import Artifact, RunContext, StageResult, model_ref, register_stage


class ExportMobileConfig(StageConfig):
    """Convert the current ONNX model to ONNX Runtime's .ort format for ONNX Runtime Mobile."""

    kind: Literal["export-mobile"] = "export-mobile"
    style: Literal["Fixed", "Runtime"] = Field(
        "Fixed", description="Fixed: optimizations baked in for the target platform; Runtime: applied on the device")
    target_platform: Literal["arm", "amd64"] = Field("arm", description="CPU family of the phones (arm) or amd64")
    check_usability: bool = Field(True, description="Run onnxruntime's mobile usability checker (NNAPI / CoreML)")


@register_stage(ExportMobileConfig, order=80, reads="onnx", changes="export", produces=("export",),
                rules=(NEEDS_ONNX,),
                summary="Convert the ONNX model to .ort for ONNX Runtime Mobile, with its operator config")
def export_mobile(art: Artifact, cfg: ExportMobileConfig, ctx: RunContext) -> StageResult:
    from edgebert import models
    from edgebert.export.mobile import export_mobile as run_export

    tokenizer = models.load_tokenizer(model_ref(art, art.model))
    src = art.path(art.onnx)
    onnx = ctx.work / "model.onnx"
    shutil.copyfile(src, onnx)  # the .ort file is named after its source
    report = run_export(onnx, ctx.work, style=cfg.style, target_platform=cfg.target_platform, tokenizer=tokenizer,
                        **ctx.validation_inputs(), check_usability=cfg.check_usability)
    onnx.unlink()
    samples_note = _samples_problem(report["text_in"], model_ref(art, art.model))
    ort = ctx.work / Path(report["ort_path"]).name
    config = ctx.work / Path(report["config_path"]).name
    validation = {k: report[k] for k in ("max_abs_logit_diff", "label_agreement")}
    metrics = {"bytes": report["ort_bytes"], "onnx_bytes": report["onnx_bytes"],
               "required_operators": report["required_operators"], "usability": report.get("usability")}
    # The app ships the .ort only; the ONNX file stays where build_engine.sh needs it.
    deploy = {k: v for k, v in art.deploy.items() if not k.endswith(".onnx") or "build_engine.sh" in art.deploy}
    deploy.update({"model.ort": art.rel(ort), "required_operators.config": art.rel(config)})
    deploy.update({name: art.rel(path) for name, path in _app_guide(ctx.work, samples=samples_note is None).items()})
    if samples_note:
        ctx.log(f"export-mobile: {samples_note}")
        metrics["app_samples"] = samples_note
    return StageResult(art.replace(deploy=deploy, primary="model.ort"), metrics=metrics, validation=validation)


#: the integration guide and app samples shipped in a mobile artifact (name in model/ -> source file)
APP_FILES = {"INTEGRATION.md": ("docs", "mobile.md"),
             "EdgebertClassifier.kt": ("examples", "android/EdgebertClassifier.kt"),
             "EdgebertClassifier.swift": ("examples", "ios/EdgebertClassifier.swift")}


def _samples_problem(text_in: bool, tokenizer_dir: str) -> str | None:
    """Why the Kotlin / Swift samples cannot run this model, else None. They feed a text-in model its string
    and tokenize for a token-in one with their port of BERT's WordPiece (edgebert/runtime/wordpiece.py),
    which refuses any other tokenizer (an ALBERT's SentencePiece Unigram)."""
    from edgebert.errors import ModelLoadError
    from edgebert.runtime.wordpiece import read_settings

    if text_in:
        return None
    try:
        read_settings(tokenizer_dir)
    except ModelLoadError as e:
        return ("the Kotlin / Swift samples are left out: for a token-in model they tokenize with their port of "
                f"BERT's WordPiece, and {str(e)[0].lower()}{str(e)[1:]} The default mobile recipe puts the tokenizer "
                "in the model (text-in), which the samples run.")
    return None


def _app_guide(work, samples: bool = True) -> dict[str, Any]:
    """Copy docs/mobile.md and, where they can run the model (``samples``), the Kotlin / Swift samples beside
    the .ort model (where installed)."""
    from edgebert.targets import source_dir

    out = {}
    for name, (folder, rel) in APP_FILES.items():
        if not samples and name != "INTEGRATION.md":
            continue
        src = source_dir(folder) / rel
        if src.is_file():
            shutil.copyfile(src, work / name)
            out[name] = work / name
    return out
