"""The ``distill`` stage: train the pruned student to imitate the fine-tuned teacher
(:func:`edgebert.compress.distill.distill`: KL on logits + hard labels)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from edgebert.compress.distill import layer_map_problem, learning_rates
from edgebert.config import StageConfig
from edgebert.errors import ConfigError
from edgebert.stages._shared import BEFORE_EXPORTS, BEFORE_SPARSIFY, agreement, dev_logits, load, save
from edgebert.stages.registry import Artifact, RunContext, StageResult, model_ref, register_stage, requires

__all__ = ["DistillConfig", "distill", "resolve_learning_rates"]


class DistillConfig(StageConfig):
    """How to distil a teacher into a student. ``None`` learning rates pick the student family's
    distillation default (:func:`edgebert.compress.distill.default_distill_learning_rates`)."""

    kind: Literal["distill"] = "distill"
    temperature: float = Field(2.0, gt=0, description="Softmax temperature of the soft (KL) loss")
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the soft (KL) loss; 1-alpha on the hard labels")
    hidden_weight: float = Field(0.0, ge=0, description="Weight of hidden-state MSE between mapped layers (0: off)")
    attention_weight: float = Field(
        0.0, ge=0,
        description="Weight of attention-map KL between mapped layers (0: off); each head kept by pruning "
                    "is matched to the teacher head it came from",
    )
    layer_map: list[int] | None = Field(
        None, description="Teacher layer for each student layer (default: the layers the student kept, else uniform)"
    )
    epochs: int = Field(3, ge=1, le=1000, description="Maximum number of passes over the training split")
    learning_rate: float | None = Field(
        None, gt=0, lt=1,
        description="Peak learning rate of the student encoder (default: per model family, a third of its "
                    "encoder fine-tuning rate: 1e-4 for compact BERT such as MiniLM, 1e-5 for base-size BERT and ALBERT)",
    )
    head_learning_rate: float | None = Field(
        None, gt=0, lt=1,
        description="Peak learning rate of the pooler and classifier head (default: the encoder's; the head "
                    "is already trained, unlike in fine-tuning)",
    )
    batch_size: int = Field(32, ge=1, description="Examples per optimisation step")
    max_length: int = Field(128, ge=8, le=8192, description="Token cap per example (longer texts are truncated)")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Fraction of steps with linearly rising learning rate")
    weight_decay: float = Field(0.01, ge=0, lt=1, description="AdamW weight decay (not applied to biases and LayerNorm)")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm")
    seed: int = Field(0, description="Seed for shuffling and dropout")
    patience: int = Field(2, ge=0, description="Stop after this many epochs without dev improvement (0: never stop early)")
    select: Literal["accuracy", "agreement", "kl"] = Field(
        "accuracy",
        description="Which epoch's student to keep: best dev accuracy (ties broken by agreement with the teacher), "
                    "best dev agreement with the teacher (ties broken by accuracy), or lowest dev KL to the "
                    "teacher's softened outputs (ties broken by agreement). On a small dev set, agreement varies "
                    "less than accuracy, and KL, a mean over every sentence's probabilities rather than a count "
                    "of flipped labels, less than agreement; both are what distillation optimises",
    )
    augment: int = Field(
        0, ge=0, le=100,
        description="Perturbed copies of each training text added to the transfer set (word masking, word swaps, "
                    "n-gram sampling; Tang et al. 2019), made afresh every epoch and trained on the teacher's "
                    "outputs only (0: off). Each copy adds one training-split's worth of steps per epoch",
    )

    @model_validator(mode="after")
    def _check(self):
        if self.layer_map is not None and (not self.layer_map or min(self.layer_map) < 0):
            raise ValueError(f"layer_map needs one teacher layer index >= 0 per student layer, got {self.layer_map}")
        return self


def resolve_learning_rates(cfg: DistillConfig, config) -> DistillConfig:
    """``cfg`` with the rates it leaves unset filled in for the model with ``config``
    (:func:`edgebert.compress.distill.learning_rates`). The pipeline resolves them before it keys a
    stage, so the manifest records the rates used and a recipe that leaves them unset keys the same as
    one that spells out the same rates."""
    body, head = learning_rates(config, cfg.learning_rate, cfg.head_learning_rate)
    if (body, head) == (cfg.learning_rate, cfg.head_learning_rate):
        return cfg
    return cfg.model_copy(update={"learning_rate": body, "head_learning_rate": head})


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
                         student.label_names, **cfg.model_dump(exclude={"kind"}), progress=ctx.progress)
    report["config"] = cfg.model_dump(mode="json")  # the manifest's report names the stage's config
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
