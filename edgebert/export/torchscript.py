"""TorchScript (``torch.jit``) and ``torch.export`` (.pt2) export of a sequence classifier.

Both artifacts take the architecture spec's inputs by name and in spec order
(``input_ids, attention_mask, token_type_ids`` for BERT / ALBERT; int64, shape (batch, sequence))
and return the logits tensor, shape (batch, num_labels).

* :func:`export_torchscript` traces the model on one padded example batch (so the attention-mask
  path is traced, as in :func:`edgebert.export.export_onnx`), freezes it (``torch.jit.freeze``:
  weights become constants, eval-only) and saves it with ``torch.jit.save``. Shapes are read from
  the inputs at run time, so the file runs at other batch sizes and sequence lengths; the export
  checks that before returning. Load it with ``torch.jit.load`` (no pickle of Python classes).
* :func:`export_pt2` captures the model with ``torch.export.export`` and symbolic ``batch`` and
  ``sequence`` dimensions (``torch.export.Dim``), saved with ``torch.export.save``; load it with
  ``torch.export.load(path).module()``.

:func:`validate_torchscript` compares either file with the eager model on real texts, like
:func:`edgebert.export.validate_onnx` does for ONNX.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from edgebert.errors import DataError, ExportError, ExportValidationError
from edgebert.export.onnx import comparison_report

__all__ = ["export_pt2", "export_torchscript", "load_torch_export", "validate_torchscript"]

# Example batch for tracing / export: two texts of different lengths, so the batch is padded.
_TRACE_TEXTS = ("a short example", "a somewhat longer example sentence, used to trace the exported graph")
# Other shapes the exported file must run at: (texts, padded) -> batch sizes 1 and 3, other lengths.
_CHECK_TEXTS = (("hi",), ("one", "a third text that is longer than both of the tracing examples, by a few words", "two"))
#: largest |eager - exported| logit accepted by the export's own shape check (fp32 both sides)
SHAPE_CHECK_TOLERANCE = 1e-3


def _wrapper(model, input_names: Sequence[str]):
    """A module whose ``forward`` takes the inputs by their spec names and returns the logits."""
    import torch

    names = tuple(input_names)
    if names == ("input_ids", "attention_mask", "token_type_ids"):
        class Logits(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask, token_type_ids):
                return self.model(input_ids=input_ids, attention_mask=attention_mask,
                                  token_type_ids=token_type_ids).logits  # (batch, num_labels)
    elif names == ("input_ids", "attention_mask"):
        class Logits(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, input_ids, attention_mask):
                return self.model(input_ids=input_ids, attention_mask=attention_mask).logits
    else:
        raise ExportError(f"No TorchScript wrapper for inputs {names}; supported: BERT/ALBERT and RoBERTa-style inputs.")
    return Logits()


def _inputs(tokenizer, texts, names: Sequence[str], device, max_length: int = 128, pairs=None) -> tuple:
    import torch

    from edgebert.data import encode_texts

    enc = encode_texts(tokenizer, texts, pairs, padding="longest", truncation=True, max_length=max_length,
                       return_tensors="pt")
    ids = enc["input_ids"]
    return tuple((enc[n] if n in enc else torch.zeros_like(ids)).to(device=device, dtype=torch.long) for n in names)


def _prepare(model):
    from edgebert.models import get_spec

    params = list(model.parameters())
    if not params:
        raise ExportError("The model has no parameters; pass a transformers ...ForSequenceClassification model.")
    return tuple(get_spec(model).input_names), params[0].device


def _check_shapes(run: Callable[..., Any], model, tokenizer, names, device, what: str) -> None:
    """Run the exported module at other batch sizes / lengths; ExportValidationError if it disagrees."""
    import torch

    for texts in _CHECK_TEXTS:
        args = _inputs(tokenizer, texts, names, device)
        with torch.inference_mode():
            ref = model(**dict(zip(names, args))).logits.float()
            try:
                got = run(*args).float()
            except Exception as exc:  # a traced shape constant shows up as a runtime error here
                raise ExportValidationError(
                    f"The {what} does not run at batch {args[0].shape[0]}, length {args[0].shape[1]}: {exc}"
                ) from exc
        diff = float((ref - got).abs().max())
        if tuple(got.shape) != tuple(ref.shape) or diff > SHAPE_CHECK_TOLERANCE:
            raise ExportValidationError(
                f"The {what} gives different logits at batch {args[0].shape[0]}, length {args[0].shape[1]} "
                f"(max |diff| {diff:.2e}, shapes {tuple(got.shape)} vs {tuple(ref.shape)}): a shape was "
                "baked in while tracing."
            )


def export_torchscript(model, tokenizer, path: str | os.PathLike) -> Path:
    """Trace, freeze and save a classifier as TorchScript at ``path`` (``.pt``); return the path.

    The model is traced in eval mode on its device and dtype and left unchanged (train/eval mode
    restored). Before returning, the saved file is loaded back and run at batch sizes 1 and 3 and
    sequence lengths other than the traced one; a mismatch with the eager model raises
    ExportValidationError.
    """
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names, device = _prepare(model)
    example = _inputs(tokenizer, _TRACE_TEXTS, names, device)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # TracerWarnings flag Python-side shape arithmetic that the trace records as ops;
            # torch >= 2.10 also marks torch.jit deprecated (still supported).
            warnings.simplefilter("ignore")
            try:
                traced = torch.jit.trace(_wrapper(model, names), example, strict=False, check_trace=False)
                frozen = torch.jit.freeze(traced.eval())
            except Exception as exc:
                raise ExportError(f"TorchScript tracing failed: {exc}") from exc
            torch.jit.save(frozen, str(path))
            loaded = torch.jit.load(str(path), map_location=device)
        _check_shapes(loaded, model, tokenizer, names, device, "TorchScript export")
    finally:
        model.train(was_training)
    return path


def export_pt2(model, tokenizer, path: str | os.PathLike, *, max_length: int | None = None) -> Path:
    """Export a classifier with ``torch.export`` (dynamic batch and sequence) to ``path`` (``.pt2``).

    The sequence dimension may range from 2 to ``max_length`` (default: the model's
    ``max_position_embeddings``). The saved program is loaded back and checked at other batch
    sizes and lengths, as for :func:`export_torchscript`.
    """
    import torch
    from torch.export import Dim

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names, device = _prepare(model)
    max_len = int(max_length or getattr(model.config, "max_position_embeddings", 512))
    example = _inputs(tokenizer, _TRACE_TEXTS, names, device)
    batch, seq = Dim("batch", min=1, max=1024), Dim("sequence", min=2, max=max_len)
    dynamic = tuple({0: batch, 1: seq} for _ in names)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            try:
                program = torch.export.export(_wrapper(model, names), example, dynamic_shapes=dynamic, strict=False)
            except Exception as exc:
                raise ExportError(f"torch.export failed: {exc}") from exc
            torch.export.save(program, str(path))
        loaded = load_torch_export(path)
        _check_shapes(loaded, model, tokenizer, names, device, "torch.export program")
    finally:
        model.train(was_training)
    return path


def load_torch_export(path: str | os.PathLike):
    """A callable module from a ``.pt2`` (torch.export) or ``.pt`` (TorchScript) file."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise ExportError(f"'{path}' does not exist.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if path.suffix == ".pt2":
            return torch.export.load(str(path)).module()
        return torch.jit.load(str(path), map_location="cpu").eval()


def validate_torchscript(model, tokenizer, path: str | os.PathLike, texts: Sequence[str], *,
                         pairs: Sequence[str] | None = None, max_length: int = 128,
                         batch_size: int = 16) -> dict[str, Any]:
    """Compare a TorchScript (``.pt``) or torch.export (``.pt2``) file with the eager model on ``texts``
    (with their second sentences ``pairs`` for a sentence-pair task).

    Same protocol and report as :func:`edgebert.export.validate_onnx`: every text alone at its own
    length, then all texts in padded batches of ``batch_size``. Returns ``{"n",
    "max_abs_logit_diff", "max_abs_logit_diff_batch1", "max_abs_logit_diff_padded",
    "label_agreement", "min_tokens", "max_tokens"}``.
    """
    import torch

    texts = [str(t) for t in texts]
    if not texts:
        raise DataError("validate_torchscript needs at least one text to compare the export on")
    names, device = _prepare(model)
    module = load_torch_export(path)
    if Path(path).suffix != ".pt2":
        module = module.to(device)
    was_training = model.training
    model.eval()

    def both(start: int, stop: int) -> tuple[np.ndarray, np.ndarray, int]:
        args = _inputs(tokenizer, texts[start:stop], names, device, max_length,
                       pairs=None if pairs is None else list(pairs)[start:stop])
        with torch.inference_mode():
            ref = model(**dict(zip(names, args))).logits.float().cpu().numpy()
            got = module(*args).float().cpu().numpy()
        return ref, got, int(args[0].shape[1])

    try:
        ref1, got1, lengths = [], [], []
        for i in range(len(texts)):
            r, g, n = both(i, i + 1)
            ref1.append(r[0])
            got1.append(g[0])
            lengths.append(n)
        refp, gotp = [], []
        for start in range(0, len(texts), batch_size):
            r, g, _ = both(start, start + batch_size)
            refp.append(r)
            gotp.append(g)
    finally:
        model.train(was_training)
    return comparison_report(ref1, got1, refp, gotp, lengths)
