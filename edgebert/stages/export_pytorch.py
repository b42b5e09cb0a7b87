"""The ``export-pytorch`` stage: save the current PyTorch model (Hugging Face folder) as a deployable,
optionally in half precision, with the torch.compile decision for the device (the server-GPU fallback)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgebert.config import StageConfig
from edgebert.stages._shared import check_export, dev_split
from edgebert.stages.registry import Artifact, RunContext, StageResult, model_ref, register_stage


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


def _compile_device(cfg: ExportPyTorchConfig) -> str | None:
    """The device type the torch.compile decision is made for (part of the stage's key), None when off."""
    if cfg.compile == "off":
        return None
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@register_stage(ExportPyTorchConfig, order=100, reads="torch", changes="export", produces=("export",),
                summary="Save the PyTorch checkpoint as a deployable (fp16 for GPUs without TensorRT)",
                host=lambda cfg: _compile_device(cfg))  # looked up at call time: tests stand in for a GPU host
def export_pytorch(art: Artifact, cfg: ExportPyTorchConfig, ctx: RunContext) -> StageResult:
    import torch

    from edgebert import models
    from edgebert.evaluation import predict_logits

    loaded = models.load(model_ref(art, art.model))
    dev = dev_split(ctx, loaded.label_names)
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
    check_export(validation, cfg.max_logit_diff, 0.99, f"{cfg.dtype} checkpoint")
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
