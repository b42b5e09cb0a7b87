"""edgebert: BERT / ALBERT text classifiers from fine-tuning to compressed models on edge devices.

The library is usable on its own; the ``edgebert`` CLI is a thin layer over these functions::

    import edgebert
    result = edgebert.finetune("minilm", "intents", out="runs/minilm-intents")
    metrics = edgebert.evaluate("runs/minilm-intents", "intents", split="test")

Heavy dependencies (torch, transformers) load on first use, not on ``import edgebert``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["FinetuneConfig", "compress", "evaluate", "finetune", "load_dataset", "load_model", "load_target",
           "__version__"]


def finetune(model: str, data: Any, *, out: str, config: Any = None, **kwargs: Any):
    """Fine-tune a model on a dataset; see :func:`edgebert.train.finetune.finetune`."""
    from edgebert.train.finetune import finetune as _finetune

    return _finetune(model, data, out=out, config=config, **kwargs)


def compress(model: str = "minilm", target: str = "cpu", **kwargs: Any):
    """Run a target's compression recipe and write an artifact folder; see :func:`edgebert.pipeline.compress`."""
    from edgebert.pipeline import compress as _compress

    return _compress(model, target, **kwargs)


def load_target(name_or_path: str):
    """A target profile by name or file; see :func:`edgebert.targets.load_target`."""
    from edgebert.targets import load_target as _load

    return _load(name_or_path)


def evaluate(model: str, data: Any, **kwargs: Any) -> dict:
    """Score a fine-tuned model; see :func:`edgebert.evaluation.evaluate`."""
    from edgebert.evaluation import evaluate as _evaluate

    return _evaluate(model, data, **kwargs)


def load_model(ref: str, **kwargs: Any):
    """Load a classifier and tokenizer; see :func:`edgebert.models.load`."""
    from edgebert.models import load

    return load(ref, **kwargs)


def load_dataset(data: Any, **kwargs: Any):
    """Load a labelled dataset; see :func:`edgebert.data.load_dataset`."""
    from edgebert.data import load_dataset as _load

    return _load(data, **kwargs)


def __getattr__(name: str):
    if name == "FinetuneConfig":
        from edgebert.train.finetune import FinetuneConfig

        return FinetuneConfig
    raise AttributeError(f"module 'edgebert' has no attribute {name!r}")
