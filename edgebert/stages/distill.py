"""The ``distill`` stage: train the pruned student to imitate the fine-tuned teacher
(:func:`edgebert.compress.distill.distill`: KL on logits + hard labels)."""

from __future__ import annotations

from typing import Any

from edgebert.compress.distill import DistillConfig, layer_map_problem, resolve_learning_rates
from edgebert.errors import ConfigError
from edgebert.stages._shared import BEFORE_EXPORTS, BEFORE_SPARSIFY, agreement, dev_logits, load, save
from edgebert.stages.registry import Artifact, RunContext, StageResult, model_ref, register_stage, requires

__all__ = ["DistillConfig", "distill"]

NEEDS_PRUNE = requires(
    "torch:pruned", "{here} has no smaller student: distillation trains a pruned model to imitate the fine-tuned "
                    "one, so a 'prune' stage must come before it.")


def _check_distill(cfg: DistillConfig, shape: dict[str, Any]) -> None:
    """An explicit layer map against the student's and the teacher's layer counts (before any work)."""
    if cfg.layer_map is None:
        return
    n_s = shape["num_hidden_layers"]
    problem = layer_map_problem(cfg.layer_map, n_s, shape.get("teacher_layers", n_s))
    if problem:
        raise ConfigError(f"{problem} (the model after the prune stages before it).")


@register_stage(DistillConfig, order=30, reads="torch", changes="torch", check=_check_distill,
                rules=(BEFORE_EXPORTS, BEFORE_SPARSIFY, NEEDS_PRUNE),
                summary="Train the pruned student to imitate the fine-tuned teacher (KL on logits + hard labels)",
                # row order seeded by distill.epoch_seed (was seed + epoch): the same for seed 0 only
                revision=lambda cfg: "epoch_seed: 1000 blocks" if cfg.seed else None,
                for_model=resolve_learning_rates)  # per model family, before the stage is keyed
def distill(art: Artifact, cfg: DistillConfig, ctx: RunContext) -> StageResult:
    from edgebert.compress.distill import distill as run_distill
    from edgebert.compress.distill import learning_rate_warning

    teacher, data = load(model_ref(art, art.teacher), ctx)
    student, _ = load(model_ref(art, art.model), ctx)
    lr_warning = learning_rate_warning(student.model.config, cfg.learning_rate)
    if lr_warning:
        ctx.log(f"Warning: {lr_warning}.")
    report = run_distill(teacher.model, student.model, student.tokenizer, data.split("train"), data.split("dev"),
                         student.label_names, cfg, progress=ctx.progress)
    after = dev_logits(student, data, cfg.max_length)
    teacher_logits = dev_logits(teacher, data, cfg.max_length)
    del teacher
    out = save(student, ctx)
    check = agreement(teacher_logits, after, data.split("dev").labels)
    check["student_accuracy_before"] = report["student_before"]["accuracy"]  # measured by distill itself
    metrics = {"dev_accuracy": check["accuracy_after"], "teacher_dev_accuracy": check["accuracy_before"],
               "report": report}
    if lr_warning:
        metrics["learning_rate_warning"] = lr_warning
    return StageResult(art.replace(model=art.rel(out)), metrics=metrics, validation=check)
