"""Predicting with a PyTorch classifier and scoring it on a dataset split."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.data import Dataset, Split, collate_batches, load_dataset
from edgebert.errors import DataError
from edgebert.metrics import classification_metrics


def predict_logits(model, tokenizer, split: Split, *, batch_size: int = 64, max_length: int = 128,
                   device=None, progress: bool = False) -> np.ndarray:
    """Logits for every row of ``split``, in row order. Shape (rows, num_labels), float32.

    Rows are batched by similar length (dynamic padding) and put back in order afterwards.
    """
    import torch
    from tqdm.auto import tqdm

    device = device or next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = np.zeros((len(split), model.config.num_labels), dtype=np.float32)
    batches = collate_batches(split, tokenizer, batch_size=batch_size, max_length=max_length,
                              sort_by_length=True)
    total = (len(split) + batch_size - 1) // batch_size
    with torch.inference_mode():
        for inputs, _labels, rows in tqdm(batches, total=total, disable=not progress, desc="eval",
                                          unit="batch", leave=False):
            inputs = {k: v.to(device) for k, v in inputs.items()}
            logits = model(**inputs).logits  # (batch, num_labels)
            out[rows] = logits.float().cpu().numpy()
    model.train(was_training)
    return out


def score(model, tokenizer, split: Split, label_names: list[str], *, batch_size: int = 64,
          max_length: int = 128, detail: bool = False, progress: bool = False,
          out_of_scope_label: str | None = None) -> dict[str, Any]:
    """Metrics of ``model`` on ``split`` (labels already indexed in the model's label order); with
    ``out_of_scope_label``, the out-of-scope metrics too."""
    logits = predict_logits(model, tokenizer, split, batch_size=batch_size, max_length=max_length,
                            progress=progress)
    return classification_metrics(split.labels, logits.argmax(-1), label_names, detail=detail,
                                  out_of_scope_label=out_of_scope_label)


def evaluate(model: str | os.PathLike, data: str | os.PathLike | Dataset, *, split: str = "test",
             batch_size: int = 64, max_length: int = 128, out: str | os.PathLike | None = None,
             progress: bool = False, **data_options: Any) -> dict[str, Any]:
    """Accuracy, macro precision/recall/F1, per-class report and confusion matrix of a model.

    ``model`` is a fine-tuned classifier (folder, alias or hub id) whose labels must cover the
    dataset's. With ``out``, the metrics are also written there as JSON.
    """
    from edgebert import models
    from edgebert.artifact import check_writable, write_json

    if out is not None:
        check_writable(out, replaced=True)  # write_json renames a temp file into place: the folder is written
    ds = data if isinstance(data, Dataset) else load_dataset(data, **data_options)
    loaded = models.load(model)
    models.check_max_length(max_length, loaded.model.config, "max_length (--max-length)", model=str(model))
    ds = ds.with_labels(loaded.label_names)
    if split not in ds.splits:
        raise DataError(f"Dataset {ds.name} has no '{split}' split. Available: {', '.join(ds.splits)}.")
    metrics = score(loaded.model, loaded.tokenizer, ds.split(split), loaded.label_names,
                    batch_size=batch_size, max_length=max_length, detail=True, progress=progress,
                    out_of_scope_label=ds.out_of_scope_label)
    result = {"model": str(model), "data": ds.name, "split": split, "file": ds.files.get(split),
              **metrics}
    if out is not None:
        write_json(Path(out), result)
    return result
