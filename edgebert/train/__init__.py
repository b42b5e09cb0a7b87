"""Fine-tuning of BERT-family classifiers."""

from edgebert.train.finetune import FinetuneConfig, FinetuneResult, default_learning_rates, finetune

__all__ = ["FinetuneConfig", "FinetuneResult", "default_learning_rates", "finetune"]
