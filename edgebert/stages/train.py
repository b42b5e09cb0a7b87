"""Stages that change the PyTorch model: ``finetune``, ``prune``, ``distill``, ``sparsify``.

Each loads the current model folder, calls the library function (:mod:`edgebert.train`,
:mod:`edgebert.compress`), saves the result as a Hugging Face folder in the stage's work folder and
checks it against the model it came from on the dev split (accuracy before / after, label
agreement), so the manifest shows what each step cost.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from edgebert.compress.distill import DistillConfig, layer_map_problem, resolve_learning_rates
from edgebert.compress.prune import PruneConfig
from edgebert.compress.sparsify import SparsifyConfig
from edgebert.errors import ConfigError
from edgebert.stages.registry import Artifact, RunContext, StageResult, register_stage
from edgebert.train.finetune import FinetuneConfig


class FinetuneStageConfig(FinetuneConfig):
    """Fine-tuning as a pipeline stage (see ``edgebert finetune``)."""

    when: Literal["needed", "always"] = Field(
        "needed",
        description="needed: only when the model has no trained head for the dataset's labels; always: train anyway")


class PruneStageConfig(PruneConfig):
    """Structured pruning as a pipeline stage (see :mod:`edgebert.compress.prune`)."""


class DistillStageConfig(DistillConfig):
    """Knowledge distillation from the fine-tuned model (the teacher) into the pruned student."""


def _load(ref: str, ctx: RunContext):
    from edgebert import models

    loaded = models.load(ref)
    data = ctx.dataset.with_labels(loaded.label_names)
    return loaded, data


def _dev_logits(loaded, data, max_length: int = 128):
    from edgebert.evaluation import predict_logits

    return predict_logits(loaded.model, loaded.tokenizer, data.split("dev"), max_length=max_length)


def _agreement(before, after, labels) -> dict[str, Any]:
    """Dev accuracy before/after and how often the two models pick the same label."""
    import numpy as np

    labels = np.asarray(labels)
    a, b = before.argmax(-1), after.argmax(-1)
    return {
        "n": int(len(labels)),
        "accuracy_before": float((a == labels).mean()),
        "accuracy_after": float((b == labels).mean()),
        "label_agreement": float((a == b).mean()),
        "max_abs_logit_diff": float(np.abs(before - after).max()),
    }


def _save(loaded, ctx: RunContext) -> str:
    out = ctx.work / "model"
    loaded.model.save_pretrained(out)
    loaded.tokenizer.save_pretrained(out)
    return str(out)


@register_stage(FinetuneStageConfig, reads="torch", changes="torch",
                summary="Fine-tune a classification head (and the encoder) on the dataset")
def finetune(art: Artifact, cfg: FinetuneStageConfig, ctx: RunContext) -> StageResult:
    from edgebert import models
    from edgebert.train.finetune import finetune as run_finetune

    config = models.load_config(_ref(art, art.model))
    trained = models.model_labels(config)
    if cfg.when == "needed" and trained is not None and set(trained) == set(ctx.dataset.label_names):
        from edgebert.evaluation import score

        loaded, data = _load(_ref(art, art.model), ctx)
        dev = score(loaded.model, loaded.tokenizer, data.split("dev"), loaded.label_names, max_length=cfg.max_length)
        return StageResult(art.replace(teacher=art.teacher or art.model), metrics={"dev": dev}, skipped=(
            "the model already has a trained head for these labels (when: needed)"))
    lib_cfg = FinetuneConfig(**cfg.model_dump(exclude={"when"}))
    result = run_finetune(_ref(art, art.model), ctx.dataset, out=ctx.work / "model", config=lib_cfg, progress=ctx.progress)
    model = art.rel(result.out)
    return StageResult(art.replace(model=model, teacher=model),
                       metrics={"dev": result.metrics.get("dev"), "best_epoch": result.metrics.get("best_epoch"),
                                "history": result.metrics.get("history")})


def _check_prune(cfg: PruneStageConfig, shape: dict[str, Any]) -> None:
    """Layer counts and indices against the model's layers (before any work); updates ``shape``."""
    n = shape["num_hidden_layers"]
    shape.setdefault("teacher_layers", n)  # the model before the first prune teaches distill
    if isinstance(cfg.layers, int):
        if cfg.layers >= n:
            raise ConfigError(f"layers: {cfg.layers} would drop every layer of a {n}-layer model; "
                              f"drop at most {n - 1}.")
        shape["num_hidden_layers"] = n - cfg.layers
    elif isinstance(cfg.layers, list):
        bad = [i for i in cfg.layers if i >= n]
        if bad:
            raise ConfigError(f"layers: keeps {bad}, but the model has {n} layers (0..{n - 1}).")
        shape["num_hidden_layers"] = len(cfg.layers)


@register_stage(PruneStageConfig, reads="torch", changes="torch", check=_check_prune,
                summary="Remove attention heads, FFN neurons and whole layers ranked by measured importance")
def prune(art: Artifact, cfg: PruneStageConfig, ctx: RunContext) -> StageResult:
    from edgebert.compress.prune import PruneConfig as LibConfig
    from edgebert.compress.prune import prune as run_prune

    return _change_in_place(
        art, ctx, lambda loaded, data: run_prune(loaded.model, loaded.tokenizer, loaded.spec, data.split("train"),
                                                 LibConfig(**cfg.model_dump())),
        ("parameters_before", "parameters_after"), cfg.max_length)


def _change_in_place(art: Artifact, ctx: RunContext, change, keys: tuple[str, ...],
                     max_length: int = 128) -> StageResult:
    """Load the current model, apply ``change(loaded, data) -> report`` to it in place, save it and
    check it against itself before the change on the dev split; ``keys`` of the report become
    top-level metrics. The model before the change stays the teacher (if none was set yet)."""
    loaded, data = _load(_ref(art, art.model), ctx)
    before = _dev_logits(loaded, data, max_length)
    report = change(loaded, data)
    after = _dev_logits(loaded, data, max_length)
    out = _save(loaded, ctx)
    check = _agreement(before, after, data.split("dev").labels)
    metrics = {"dev_accuracy": check["accuracy_after"], **{k: report[k] for k in keys}, "report": report}
    return StageResult(art.replace(model=art.rel(out), teacher=art.teacher or art.model),
                       metrics=metrics, validation=check)


def _check_distill(cfg: DistillStageConfig, shape: dict[str, Any]) -> None:
    """An explicit layer map against the student's and the teacher's layer counts (before any work)."""
    if cfg.layer_map is None:
        return
    n_s = shape["num_hidden_layers"]
    problem = layer_map_problem(cfg.layer_map, n_s, shape.get("teacher_layers", n_s))
    if problem:
        raise ConfigError(f"{problem} (the model after the prune stages before it).")


@register_stage(DistillStageConfig, reads="torch", changes="torch", check=_check_distill,
                summary="Train the pruned student to imitate the fine-tuned teacher (KL on logits + hard labels)",
                # row order seeded by distill.epoch_seed (was seed + epoch): the same for seed 0 only
                revision=lambda cfg: "epoch_seed: 1000 blocks" if cfg.seed else None,
                for_model=resolve_learning_rates)  # per model family, before the stage is keyed
def distill(art: Artifact, cfg: DistillStageConfig, ctx: RunContext) -> StageResult:
    from edgebert.compress.distill import DistillConfig as LibConfig
    from edgebert.compress.distill import distill as run_distill
    from edgebert.compress.distill import learning_rate_warning

    teacher, data = _load(_ref(art, art.teacher), ctx)
    student, _ = _load(_ref(art, art.model), ctx)
    lr_warning = learning_rate_warning(student.model.config, cfg.learning_rate)
    if lr_warning:
        ctx.log(f"Warning: {lr_warning}.")
    report = run_distill(teacher.model, student.model, student.tokenizer, data.split("train"), data.split("dev"),
                         student.label_names, LibConfig(**cfg.model_dump()), progress=ctx.progress)
    after = _dev_logits(student, data, cfg.max_length)
    teacher_logits = _dev_logits(teacher, data, cfg.max_length)
    del teacher
    out = _save(student, ctx)
    check = _agreement(teacher_logits, after, data.split("dev").labels)
    check["student_accuracy_before"] = report["student_before"]["accuracy"]  # measured by distill itself
    metrics = {"dev_accuracy": check["accuracy_after"], "teacher_dev_accuracy": check["accuracy_before"],
               "report": report}
    if lr_warning:
        metrics["learning_rate_warning"] = lr_warning
    return StageResult(art.replace(model=art.rel(out)), metrics=metrics, validation=check)


class SparsifyStageConfig(SparsifyConfig):
    """Unstructured magnitude sparsity (optional; saves nothing on dense kernels: see the report's note)."""


@register_stage(SparsifyStageConfig, reads="torch", changes="torch",
                summary="Zero the smallest encoder weights (unstructured; no speed-up or smaller file on dense runtimes)")
def sparsify(art: Artifact, cfg: SparsifyStageConfig, ctx: RunContext) -> StageResult:
    from edgebert.compress.sparsify import SparsifyConfig as LibConfig
    from edgebert.compress.sparsify import sparsify_

    return _change_in_place(
        art, ctx, lambda loaded, _data: sparsify_(loaded.model, loaded.spec, LibConfig(**cfg.model_dump())),
        ("encoder_sparsity", "deflated_bytes_before", "deflated_bytes"))


def _is_external(ref: str) -> bool:
    from pathlib import Path

    return Path(ref).is_absolute() or not (Path(ref).parts and Path(ref).parts[0] == "stages")


def _ref(art: Artifact, ref: str | None) -> str:
    """A model reference usable by models.load (artifact-relative stage folders made absolute)."""
    assert ref is not None
    return ref if _is_external(ref) else str(art.path(ref))
