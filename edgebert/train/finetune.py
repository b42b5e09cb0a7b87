"""Fine-tuning: AdamW with linear warm-up and decay, early stopping, best-checkpoint selection.

The loop runs under Hugging Face Accelerate, so the same code runs on CPU, one GPU (with mixed
precision), or several GPUs / nodes when started by ``accelerate launch`` or ``torchrun``.
"""

from __future__ import annotations

import copy
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from edgebert.config import StageConfig
from edgebert.errors import ConfigError, MissingDependencyError, TrainingError


class FinetuneConfig(StageConfig):
    """How to fine-tune a classifier. ``None`` learning rates pick a per-model-family default."""

    kind: Literal["finetune"] = "finetune"
    learning_rate: float | None = Field(
        None, gt=0, lt=1, description="Peak learning rate of the encoder (default: per model family)"
    )
    head_learning_rate: float | None = Field(
        None, gt=0, lt=1, description="Peak learning rate of the pooler and classifier head (default: 10x the encoder's)"
    )
    epochs: int = Field(3, ge=1, le=1000, description="Maximum number of passes over the training split")
    batch_size: int = Field(32, ge=1, description="Examples per optimisation step (per device, before accumulation)")
    grad_accum: int = Field(1, ge=1, description="Batches accumulated into one optimiser step")
    weight_decay: float = Field(0.01, ge=0, lt=1, description="AdamW weight decay (not applied to biases and LayerNorm)")
    warmup_ratio: float = Field(0.1, ge=0, lt=1, description="Fraction of steps with linearly rising learning rate")
    max_grad_norm: float = Field(1.0, gt=0, description="Gradient clipping norm")
    max_length: int = Field(128, ge=8, le=8192, description="Token cap per example (longer texts are truncated)")
    seed: int = Field(42, description="Seed for initialisation, shuffling and dropout")
    metric: Literal["accuracy", "macro_f1"] = Field("accuracy", description="Dev metric for early stopping and best checkpoint")
    patience: int = Field(2, ge=0, description="Stop after this many epochs without dev improvement (0: never stop early)")
    freeze_embeddings: bool = Field(False, description="Keep the embedding layer fixed")
    freeze_layers: int = Field(0, ge=0, description="Keep the first N transformer layers fixed (not for ALBERT's shared layer)")
    lora: bool = Field(False, description="Train LoRA adapters (peft) instead of all weights; merged into the saved model")
    lora_r: int = Field(8, ge=1, description="LoRA rank")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling alpha")
    lora_dropout: float = Field(0.1, ge=0, lt=1, description="LoRA dropout")
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = Field(
        "auto", description="auto: bf16/fp16 on a GPU that supports it, fp32 on CPU"
    )
    max_steps: int | None = Field(None, ge=1, description="Stop after this many optimiser steps (for quick runs)")
    eval_batch_size: int = Field(64, ge=1, description="Batch size for dev/test evaluation")

    @model_validator(mode="after")
    def _check(self):
        if self.lora and (self.freeze_layers or self.freeze_embeddings):
            raise ValueError("lora already freezes the base model; drop freeze_layers/freeze_embeddings")
        return self


def default_learning_rates(config) -> tuple[float, float]:
    """(encoder, head) peak learning rates for a model family.

    Why (measured by ``benchmarks/lr_sweep.py``, see README "Fine-tuning defaults"): compact
    distilled encoders such as all-MiniLM-L6-v2 (hidden 384) were trained as sentence encoders with
    mean pooling, so their [CLS] pooler is no trained classifier input and BERT's usual 2e-5
    converges far too slowly (BANKING77 subset: 0.26 test accuracy at 2e-5, 0.83 at 3e-4 with a
    10x head rate; 3e-4 and 5e-4 tie). Every family gets a 10x larger rate on the pooler and the
    freshly initialised head (0.41 -> 0.64 at 1e-4). Base-size BERT / ALBERT keep the 2e-5..5e-5
    range of their papers' GLUE recipes (not measured here: no base-size weights offline).
    """
    body = FAMILY_LEARNING_RATES[model_family(config)]
    return body, body * 10


# Encoder learning rate per family (see default_learning_rates); the head gets 10x.
FAMILY_LEARNING_RATES = {"ALBERT": 3e-5, "compact BERT (hidden <= 512)": 3e-4, "base-size BERT": 3e-5}


def model_family(config) -> str:
    """The family whose default learning rates a model takes (a key of FAMILY_LEARNING_RATES)."""
    if config.model_type == "albert":
        return "ALBERT"
    if int(getattr(config, "hidden_size", 768)) <= 512:
        return "compact BERT (hidden <= 512)"
    return "base-size BERT"


@dataclass
class FinetuneResult:
    """What ``finetune`` produced: the output folder and its metrics (also in metrics.json)."""

    out: Path
    metrics: dict[str, Any]
    manifest: dict[str, Any]
    #: False on the non-main ranks of a distributed launch (they write nothing)
    main_process: bool = True


def _param_groups(model, spec, body_lr: float, head_lr: float, weight_decay: float):
    head_prefixes = tuple(p + "." for p in (spec.classifier, spec.pooler) if p)
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        # LoRA wraps names as base_model.model.<name>
        plain = name.split("base_model.model.", 1)[-1]
        is_head = plain.startswith(head_prefixes)
        no_decay = param.ndim < 2  # biases and LayerNorm weights
        groups.setdefault((is_head, no_decay), []).append(param)
    return [
        {"params": params, "lr": head_lr if is_head else body_lr,
         "weight_decay": 0.0 if no_decay else weight_decay}
        for (is_head, no_decay), params in groups.items()
    ]


def _adamw(groups: list[dict], device_type: str | None = None):
    """AdamW over the parameter groups, with torch's fused kernel where torch has one for the device
    the parameters train on (``device_type``; default: where they are now) and their dtypes, else
    the default implementation. torch lists CPU among the fused devices from 2.4 on.

    The update touches every parameter each step, mostly the 30522 x 384 word embedding; on 2 CPU
    cores the fused kernel does it 6.6x faster than the default per-tensor loop for MiniLM
    (``python benchmarks/train_step.py``, benchmarks/results/train_step.md), a larger share of the
    step for a pruned student, whose encoder is small next to its embedding.
    """
    import torch

    params = [p for g in groups for p in g["params"]]
    try:
        from torch.utils._foreach_utils import _get_fused_kernels_supported_devices

        supported = set(_get_fused_kernels_supported_devices())
    except ImportError:  # a torch without the list: no fused kernel assumed
        supported = set()
    devices = {device_type} if device_type else {p.device.type for p in params}
    fused = bool(params) and devices <= supported and all(p.is_floating_point() for p in params)
    return torch.optim.AdamW(groups, fused=True) if fused else torch.optim.AdamW(groups)


def _freeze_(model, spec, cfg: FinetuneConfig) -> None:
    from edgebert.models.specs import get_path

    if cfg.freeze_embeddings:
        for p in get_path(model, spec.embeddings).parameters():
            p.requires_grad_(False)
        if spec.embedding_projection:
            for p in get_path(model, spec.embedding_projection).parameters():
                p.requires_grad_(False)
    if cfg.freeze_layers:
        if spec.shared_layers:
            raise ConfigError(
                "freeze_layers does not apply to ALBERT: all its layers share one set of weights. "
                "Use freeze_embeddings, or lora."
            )
        layers = spec.layer_modules(model)
        if cfg.freeze_layers > len(layers):
            raise ConfigError(f"freeze_layers={cfg.freeze_layers} but the model has {len(layers)} layers.")
        for layer in layers[: cfg.freeze_layers]:
            for p in layer.parameters():
                p.requires_grad_(False)


def _apply_lora(model, spec, cfg: FinetuneConfig):
    try:
        from peft import LoraConfig, TaskType, get_peft_model
    except ImportError:
        raise MissingDependencyError("peft", extra="lora", purpose="--lora") from None
    lora_cfg = LoraConfig(
        task_type=TaskType.SEQ_CLS, r=cfg.lora_r, lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout, target_modules=list(spec.lora_targets),
        # the head (and pooler) are new for this task: train them fully
        modules_to_save=[m.split(".")[-1] for m in (spec.classifier, spec.pooler) if m],
    )
    return get_peft_model(model, lora_cfg)


def _mixed_precision(choice: str) -> str:
    import torch

    if choice != "auto":
        if choice != "no" and not torch.cuda.is_available():
            raise ConfigError(f"mixed_precision={choice} needs a CUDA GPU; none is available. Use 'auto' or 'no'.")
        return choice
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    return "no"


class _Encode:
    """DataLoader collate function: tokenise the rows of one batch, padded to its longest row."""

    def __init__(self, split, tokenizer, max_length: int):
        self.split, self.tokenizer, self.max_length = split, tokenizer, max_length

    def __call__(self, rows: list[int]):
        import torch

        from edgebert.data import encode_texts

        texts = [self.split.texts[i] for i in rows]
        pairs = [self.split.text_pairs[i] for i in rows] if self.split.text_pairs else None
        enc = encode_texts(self.tokenizer, texts, pairs, padding="longest", truncation=True,
                           max_length=self.max_length, return_tensors="pt")
        return dict(enc), torch.tensor([self.split.labels[i] for i in rows], dtype=torch.long)


def finetune(model: str | os.PathLike, data: Any, *, out: str | os.PathLike,
             config: FinetuneConfig | None = None, overwrite: bool = False,
             progress: bool = True, **data_options: Any) -> FinetuneResult:
    """Fine-tune ``model`` (alias, folder or hub id) on ``data`` and write a model folder to ``out``.

    ``data`` is a :class:`edgebert.data.Dataset` or anything :func:`edgebert.data.load_dataset`
    accepts (``data_options`` are passed to it). The folder is a standard Hugging Face model
    folder (safetensors, config with labels, tokenizer) plus ``labels.json``, ``metrics.json`` and
    ``manifest.json``. It appears only when training finished; on failure nothing is left there.
    """
    import torch
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from torch.utils.data import DataLoader
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    from edgebert import models
    from edgebert.artifact import (check_output_dir, host_info, library_versions, now_iso,
                                   sha256_file, staged_dir, write_json)
    from edgebert.data import Dataset, file_sha256, load_dataset
    from edgebert.evaluation import score

    cfg = config or FinetuneConfig()
    out = check_output_dir(out, overwrite=overwrite, kind="finetune")
    started, t0 = now_iso(), time.perf_counter()
    ds = data if isinstance(data, Dataset) else load_dataset(data, seed=cfg.seed, **data_options)
    ds.check_trainable()
    set_seed(cfg.seed)
    loaded = models.load(model, label_names=ds.label_names)
    models.check_max_length(cfg.max_length, loaded.model.config, "max_length (--max-length)", model=str(model))
    ds = ds.with_labels(loaded.label_names)
    net, tok, spec = loaded.model, loaded.tokenizer, loaded.spec
    body_lr, head_lr = default_learning_rates(net.config)
    body_lr = cfg.learning_rate or body_lr
    head_lr = cfg.head_learning_rate or (cfg.learning_rate * 10 if cfg.learning_rate else head_lr)

    if cfg.lora:
        net = _apply_lora(net, spec, cfg)
    else:
        _freeze_(net, spec, cfg)
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    if trainable == 0:
        raise TrainingError("Nothing to train: every parameter is frozen.")

    accelerator = Accelerator(mixed_precision=_mixed_precision(cfg.mixed_precision),
                              gradient_accumulation_steps=cfg.grad_accum,
                              cpu=not torch.cuda.is_available())
    train = ds.split("train")
    generator = torch.Generator().manual_seed(cfg.seed)
    loader = DataLoader(list(range(len(train))), batch_size=cfg.batch_size, shuffle=True,
                        generator=generator, collate_fn=_Encode(train, tok, cfg.max_length))
    steps_per_epoch = math.ceil(len(loader) / cfg.grad_accum)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    optimizer = _adamw(_param_groups(net, spec, body_lr, head_lr, cfg.weight_decay), accelerator.device.type)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    net, optimizer, loader, scheduler = accelerator.prepare(net, optimizer, loader, scheduler)

    labels = ds.label_names
    dev = ds.split("dev")
    history: list[dict[str, Any]] = []
    best: tuple[float, int, dict] | None = None  # (metric, epoch, state on CPU)
    step, since_best, show = 0, 0, progress and accelerator.is_local_main_process
    for epoch in range(1, cfg.epochs + 1):
        net.train()
        bar = tqdm(loader, desc=f"epoch {epoch}/{cfg.epochs}", unit="batch", disable=not show, leave=False)
        seen, tic, losses = 0, time.perf_counter(), []
        for inputs, targets in bar:
            with accelerator.accumulate(net):
                loss = net(**inputs, labels=targets).loss
                if not torch.isfinite(loss):
                    raise TrainingError(
                        f"Loss became {loss.item()} at step {step} (epoch {epoch}). "
                        f"Lower the learning rate (now {body_lr:g} / head {head_lr:g})."
                    )
                accelerator.backward(loss)
                if accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                step += 1
            losses.append(loss.item())
            seen += targets.shape[0]
            bar.set_postfix(loss=f"{sum(losses[-20:]) / len(losses[-20:]):.4f}",
                            ex_per_s=f"{seen / (time.perf_counter() - tic):.0f}")
            if cfg.max_steps and step >= cfg.max_steps:
                break
        unwrapped = accelerator.unwrap_model(net)
        dev_metrics = score(unwrapped, tok, dev, labels, batch_size=cfg.eval_batch_size,
                            max_length=cfg.max_length)
        value = dev_metrics[cfg.metric]
        history.append({"epoch": epoch, "step": step, "train_loss": sum(losses) / max(len(losses), 1),
                        "seconds": round(time.perf_counter() - tic, 2),
                        **{f"dev_{k}": v for k, v in dev_metrics.items() if k != "n"}})
        if show:
            tqdm.write(f"epoch {epoch}: train loss {history[-1]['train_loss']:.4f}, "
                       f"dev accuracy {dev_metrics['accuracy']:.4f}, macro-F1 {dev_metrics['macro_f1']:.4f}")
        if best is None or value > best[0]:
            state = {k: v.detach().to("cpu", copy=True) for k, v in unwrapped.state_dict().items()}
            best, since_best = (value, epoch, state), 0
        else:
            since_best += 1
        if (cfg.max_steps and step >= cfg.max_steps) or (cfg.patience and since_best >= cfg.patience):
            break

    final = accelerator.unwrap_model(net)
    assert best is not None
    final.load_state_dict(best[2])
    if cfg.lora:
        final = final.merge_and_unload()
    final = final.float().cpu().eval()
    metrics: dict[str, Any] = {"best_epoch": best[1], "dev": score(final, tok, dev, labels,
                               batch_size=cfg.eval_batch_size, max_length=cfg.max_length)}
    if "test" in ds.splits:
        metrics["test"] = score(final, tok, ds.split("test"), labels,
                                batch_size=cfg.eval_batch_size, max_length=cfg.max_length, detail=True)
    metrics["history"] = history
    manifest: dict[str, Any] = {}
    if accelerator.is_main_process:
        weights = sum(t.numel() * t.element_size() for t in final.state_dict().values())
        with staged_dir(out, needs_bytes=weights + 2**20) as stage:  # + tokenizer and JSON files
            final.save_pretrained(stage)
            tok.save_pretrained(stage)
            write_json(stage / "labels.json", {"labels": labels})
            write_json(stage / "metrics.json", metrics)
            manifest = {
                "schema_version": 1,
                "kind": "finetune",
                "created": started,
                "seconds": round(time.perf_counter() - t0, 2),
                "model": {"ref": str(model), "resolved": loaded.source.kind, "path": loaded.source.path,
                          "architecture": spec.model_type, "new_head": loaded.new_head},
                "data": {
                    "name": ds.name,
                    "files": {s: {"path": f, "sha256": file_sha256(f) if Path(f).is_file() else None}
                              for s, f in ds.files.items()},
                    "rows": {s: len(sp) for s, sp in ds.splits.items()},
                    "text_column": ds.text_column, "text_pair_column": ds.text_pair_column,
                    "label_column": ds.label_column, "dev_from_train": ds.dev_from_train,
                    "labels": labels,
                },
                "config": cfg.model_dump(mode="json"),
                "resolved": {"learning_rate": body_lr, "head_learning_rate": head_lr,
                             "mixed_precision": accelerator.mixed_precision,
                             "device": str(accelerator.device), "num_processes": accelerator.num_processes,
                             "trainable_parameters": trainable, "optimizer_steps": step},
                "seed": cfg.seed,
                "metrics": {k: v for k, v in metrics.items() if k != "history"},
                "versions": library_versions(),
                "host": host_info(),
            }
            manifest["outputs"] = {p.name: sha256_file(p) for p in sorted(stage.iterdir()) if p.is_file()}
            write_json(stage / "manifest.json", manifest)
    accelerator.wait_for_everyone()
    return FinetuneResult(out=Path(out), metrics=metrics, manifest=manifest,
                          main_process=accelerator.is_main_process)
