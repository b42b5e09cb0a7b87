"""The ``finetune`` stage: train a classification head (and the encoder) on the dataset
(:func:`edgebert.train.finetune.finetune`), unless the model already has one for these labels."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from edgebert.stages._shared import BEFORE_EXPORTS, BEFORE_SPARSIFY, load
from edgebert.stages.registry import Artifact, RunContext, StageResult, model_ref, register_stage
from edgebert.train.finetune import FinetuneConfig as TrainConfig


# Extends the public config of `edgebert finetune` / edgebert.finetune(), so a recipe takes the same settings (+ when)
class FinetuneConfig(TrainConfig):
    """Fine-tuning as a pipeline stage (see ``edgebert finetune``)."""

    when: Literal["needed", "always"] = Field(
        "needed",
        description="needed: only when the model has no trained head for the dataset's labels; always: train anyway")


@register_stage(FinetuneConfig, order=10, reads="torch", changes="torch", rules=(BEFORE_EXPORTS, BEFORE_SPARSIFY),
                summary="Fine-tune a classification head (and the encoder) on the dataset")
def finetune(art: Artifact, cfg: FinetuneConfig, ctx: RunContext) -> StageResult:
    from edgebert import models
    from edgebert.train.finetune import finetune as run_finetune

    config = models.load_config(model_ref(art, art.model))
    trained = models.model_labels(config)
    if cfg.when == "needed" and trained is not None and set(trained) == set(ctx.dataset.label_names):
        from edgebert.evaluation import score

        loaded, data = load(model_ref(art, art.model), ctx)
        dev = score(loaded.model, loaded.tokenizer, data.split("dev"), loaded.label_names, max_length=cfg.max_length)
        return StageResult(art.replace(teacher=art.teacher or art.model), metrics={"dev": dev}, skipped=(
            "the model already has a trained head for these labels (when: needed)"))
    lib_cfg = TrainConfig(**cfg.model_dump(exclude={"when"}))
    result = run_finetune(model_ref(art, art.model), ctx.dataset, out=ctx.work / "model", config=lib_cfg,
                          progress=ctx.progress)
    model = art.rel(result.out)
    return StageResult(art.replace(model=model, teacher=model),
                       metrics={"dev": result.metrics.get("dev"), "best_epoch": result.metrics.get("best_epoch"),
                                "history": result.metrics.get("history")})
