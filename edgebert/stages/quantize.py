"""The ``quantize`` stage: ONNX int8 (dynamic / static QDQ) and fp16, or torch int8 dynamic.

ONNX modes are accuracy-aware: the quantized model is scored on the dev split next to the fp32
ONNX model it came from; when the drop exceeds the budget (``max_accuracy_drop``, by default the
target's ``budgets.accuracy_drop``), the layers most sensitive to int8 are kept in float until the
budget holds (:func:`edgebert.compress.quantize.quantize_with_budget`). The layers kept, the
sensitivity measured and the logit difference / label agreement against the fp32 model go into the
manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from edgebert.compress.quantize import CalibrationMethod, QuantMode, WeightType, settings_problem
from edgebert.config import StageConfig
from edgebert.stages._shared import NEEDS_ONNX, agreement
from edgebert.stages.registry import Artifact, RunContext, StageResult, forbids, model_ref, register_stage


class QuantizeConfig(StageConfig):
    """How to quantize a classifier (ONNX int8 dynamic / static, fp16, or torch int8 dynamic);
    ``max_accuracy_drop`` None takes the target's budget."""

    kind: Literal["quantize"] = Field("quantize", description="Stage kind")
    mode: QuantMode = Field(
        "int8-dynamic",
        description="int8-dynamic (CPU, no calibration), int8-static (QDQ, calibrated: TensorRT and "
                    "accelerators), fp16 (GPU), torch-int8-dynamic (torch nn.Linear int8 for TorchScript)",
    )
    per_channel: bool = Field(False, description="Quantize weights per output channel instead of per tensor")
    symmetric: bool = Field(
        False, description="Symmetric int8 activations with zero point 0 (int8-static only; TensorRT needs it)"
    )
    reduce_range: bool = Field(
        False, description="Quantize weights to 7 bits (avoids int16 overflow on x86 CPUs without VNNI)"
    )
    weight_type: WeightType = Field("s8", description="Weight integer type: s8 (signed) or u8 (unsigned)")
    calibration_samples: int = Field(
        256, ge=1, description="Number of tokenized training texts used to calibrate activation ranges (int8-static)"
    )
    calibration_method: CalibrationMethod = Field(
        "minmax", description="How activation ranges are chosen from the calibration data (int8-static)"
    )
    max_accuracy_drop: float | None = Field(
        None, ge=0,
        description="Largest allowed dev accuracy drop in points (1.0 = one percentage point); above it the "
                    "most sensitive layers are kept in float. None: quantize everything, no search",
    )
    exclude: list[str] = Field(
        default_factory=list, description="ONNX node names kept in float32 (never quantized / converted)"
    )
    KEYED_FROM_DEFAULT: ClassVar[dict[str, Any]] = {"share_target_budget": True}
    share_target_budget: bool = Field(
        True, description="Cap max_accuracy_drop by what the target's accuracy budget has left after the earlier "
                          "stages (none left: int8 may lose nothing against its input, so layers stay float). "
                          "false: max_accuracy_drop against the stage's input alone, for recipes whose aim is size "
                          "(albert: keeping its word embedding float to save a fraction of a point triples the file)")
    try_per_channel: bool = Field(
        True, description="When int8 with per-tensor weights exceeds the budget, try per-channel weights before "
                          "keeping layers in float (int8 modes; kept when fewer layers stay float)")
    max_length: int = Field(128, ge=8, le=8192,
                            description="Token cap of the dev-scoring and calibration inputs (unset in the recipe: the "
                                        "target's shapes.max_length)")

    @model_validator(mode="after")
    def _check(self):
        problem = settings_problem(self.mode, self.symmetric)
        if problem:
            raise ValueError(problem)
        return self


def _resolve(cfg: QuantizeConfig, target) -> QuantizeConfig:
    if cfg.max_accuracy_drop is None and cfg.mode != "torch-int8-dynamic":
        return cfg.model_copy(update={"max_accuracy_drop": float(target.budgets.accuracy_drop)})
    return cfg


#: what each mode leaves for the stages after it
_PRODUCES = {"torch-int8-dynamic": ("torch:int8",), "int8-dynamic": ("onnx:quantized", "onnx:int8"),
             "fp16": ("onnx:quantized", "onnx:fp16")}


def _produces(cfg: QuantizeConfig) -> tuple[str, ...]:
    if cfg.mode == "int8-static":  # TensorRT takes symmetric int8 Q/DQ only (zero point 0)
        symmetric = cfg.symmetric and cfg.weight_type == "s8"
        return ("onnx:quantized", "onnx:int8-qdq" if symmetric else "onnx:int8-qdq:asymmetric")
    return _PRODUCES[cfg.mode]


_TORCH_RULES = (forbids("export", "{here}: torch-int8-dynamic must come before the exports (it changes the torch model)."),)
_ONNX_RULES = (
    NEEDS_ONNX,
    forbids("tensorrt", "{here} comes after '{kind}' (stage {at}), whose build_engine.sh uses the ONNX model as it "
                        "was then: quantize before build-tensorrt (int8-static, symmetric: true for an int8 engine)."),
    forbids("onnx:quantized", "{here}: the ONNX model is already quantized at stage {at}."),
    forbids("onnx:text-in", "{here} comes after 'text-in' (stage {at}): quantize the classifier first, then put "
                            "the tokenizer in front of it."),
)


@register_stage(QuantizeConfig, order=50, reads="onnx", changes="onnx", resolve=_resolve, produces=_produces,
                rules=lambda cfg: _TORCH_RULES if cfg.mode == "torch-int8-dynamic" else _ONNX_RULES,
                summary="int8 dynamic / static (QDQ, calibrated) or fp16, within the accuracy budget")
def quantize(art: Artifact, cfg: QuantizeConfig, ctx: RunContext) -> StageResult:
    from edgebert import models

    if cfg.mode == "torch-int8-dynamic":
        return _torch_dynamic(art, cfg, ctx)
    from edgebert.compress.quantize import calibration_feeds, onnx_accuracy_fn, quantize_with_budget
    from edgebert.export.onnx import compare_onnx

    tokenizer = models.load_tokenizer(model_ref(art, art.model))
    labels = models.model_labels(models.load_config(model_ref(art, art.model)))
    data = ctx.dataset.with_labels(labels)
    dev = data.split("dev")
    src = art.path(art.onnx)
    out = ctx.work / "model.onnx"
    feeds = None
    if cfg.mode == "int8-static":
        import onnx

        names = [i.name for i in onnx.load(str(src), load_external_data=False).graph.input]
        train = data.split("train")
        feeds = calibration_feeds(tokenizer, train.texts, names, pairs=train.text_pairs,
                                  samples=cfg.calibration_samples, seed=ctx.seed, max_length=cfg.max_length)
    # Dynamic int8 sets a call's activation scales from the whole batch, so a text's answer depends on the
    # texts batched with it: score each text alone, as a device answering one request runs it (batches of
    # 32 showed 1.0000 dev accuracy beside 0.967 agreement on the mobile target's batch-1 runs).
    alone = {"batch_size": 1} if cfg.mode == "int8-dynamic" else {}
    eval_fn = onnx_accuracy_fn(tokenizer, dev.texts, dev.labels, pairs=dev.text_pairs, max_length=cfg.max_length,
                               **alone)
    budget = _stage_budget(cfg.max_accuracy_drop, ctx.accuracy_budget_left if cfg.share_target_budget else None)
    if budget != cfg.max_accuracy_drop:
        ctx.log(f"quantize: {budget:.2f} points of the target's accuracy budget are left after the earlier stages; "
                "int8 may spend at most that")
    settings = cfg.model_dump(exclude={"kind", "try_per_channel", "max_length", "max_accuracy_drop",
                                       "share_target_budget"})
    report = quantize_with_budget(src, out, eval_fn, **settings, max_accuracy_drop=budget, calibration_feeds=feeds)
    search = None
    if cfg.try_per_channel and not cfg.per_channel and cfg.mode != "fp16" and (
            report["kept_fp32"] or not report["within_budget"]):
        # Per-channel weight scales often recover what per-tensor int8 loses, at int8 speed; keeping
        # layers in float costs speed and size. Keep whichever leaves fewer layers in float.
        alt_path = ctx.work / "per_channel.onnx"
        alt = quantize_with_budget(src, alt_path, eval_fn, **{**settings, "per_channel": True},
                                   max_accuracy_drop=budget, calibration_feeds=feeds)

        def rank(r):
            return (not r["within_budget"], len(r["kept_fp32"]), -r["accuracy"])

        chosen = "per-channel" if rank(alt) < rank(report) else "per-tensor"
        search = {"per-tensor": _brief(report), "per-channel": _brief(alt), "chosen": chosen}
        if chosen == "per-channel":
            move_onnx(alt_path, out)
            report = dict(alt, quantize=dict(alt["quantize"], path=str(out)))
        else:
            alt_path.unlink()
            alt_path.with_name(alt_path.name + ".data").unlink(missing_ok=True)
    validation = compare_onnx(src, out, tokenizer, **ctx.validation_inputs(), max_length=cfg.max_length)
    metrics: dict[str, Any] = {
        "dev_accuracy": report["accuracy"], "fp32_dev_accuracy": report["fp32_accuracy"],
        "accuracy_drop_points": report["accuracy_drop"], "within_budget": report["within_budget"],
        "kept_fp32": report["kept_fp32"], "sensitivity": report["sensitivity"], "attempts": report["attempts"],
        "bytes_in": report["quantize"]["bytes_in"], "bytes": report["quantize"]["bytes_out"],
        "nodes_quantized": len(report["quantize"]["nodes_quantized"]),
        "nodes_float": report["quantize"]["nodes_float"], "op_counts": report["quantize"]["op_counts"],
        "weight_granularity_search": search,
        "budget_points": budget, "budget_left_before": ctx.accuracy_budget_left,
    }
    if not report["within_budget"]:
        ctx.log(f"quantize: accuracy drop {report['accuracy_drop']:.2f} points exceeds the budget "
                f"{budget:.2f} even with every layer kept in float; recorded in the manifest")
    deploy = {**art.deploy, "model.onnx": art.rel(out)}
    return StageResult(art.replace(onnx=art.rel(out), onnx_quantized=cfg.mode, deploy=deploy),
                       metrics=metrics, validation=validation)


def _stage_budget(own: float, left: float | None) -> float:
    """The drop this stage may cause: its own cap, and no more than the target's budget has left (none
    left: int8 must not lose accuracy against its input, so the search keeps layers in float)."""
    return own if left is None else min(own, max(0.0, left))


def _brief(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report[k] for k in ("accuracy", "accuracy_drop", "within_budget", "kept_fp32")}


def _torch_dynamic(art: Artifact, cfg: QuantizeConfig, ctx: RunContext) -> StageResult:
    """torch int8 dynamic: measured here, applied when TorchScript is exported (no file of its own)."""
    from edgebert import models
    from edgebert.compress.quantize import torch_quantize_dynamic
    from edgebert.evaluation import predict_logits

    loaded = models.load(model_ref(art, art.model))
    dev = ctx.dataset.with_labels(loaded.label_names).split("dev")
    before = predict_logits(loaded.model, loaded.tokenizer, dev, max_length=cfg.max_length)
    quantized = torch_quantize_dynamic(loaded.model.eval(), per_channel=cfg.per_channel)
    after = predict_logits(quantized, loaded.tokenizer, dev, max_length=cfg.max_length)
    check = agreement(before, after, dev.labels)
    drop = 100.0 * (check["accuracy_before"] - check["accuracy_after"])
    metrics = {"dev_accuracy": check["accuracy_after"], "fp32_dev_accuracy": check["accuracy_before"],
               "accuracy_drop_points": drop, "applied": "when exporting TorchScript"}
    return StageResult(art.replace(torch_quantization={"mode": cfg.mode, "per_channel": cfg.per_channel}),
                       metrics=metrics, validation=check)


def move_onnx(src: Path, dst: Path) -> None:
    """Move an ONNX file to ``dst``; a model with external weights (``src.onnx.data``, models over 2 GB)
    is re-saved so that ``dst`` names ``dst.onnx.data``, the file the artifact deploys beside it."""
    data = src.with_name(src.name + ".data")
    if not data.exists():
        src.replace(dst)
        return
    import onnx

    model = onnx.load(str(src))  # with its external data
    dst_data = dst.with_name(dst.name + ".data")
    dst_data.unlink(missing_ok=True)
    onnx.save(model, str(dst), save_as_external_data=True, all_tensors_to_one_file=True, location=dst_data.name)
    src.unlink()
    data.unlink()
