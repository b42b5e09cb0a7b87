"""ONNX export of a sequence classifier, and validation of the export against the PyTorch model.

The exporter is torch's TorchScript-based one (``torch.onnx.export(..., dynamo=False)``): for
BERT-family encoders it gives a plain, stable graph that onnxruntime's transformer optimizer and
quantizer know, and it works the same with transformers 4.x and 5.x. The graph has

* inputs: the architecture spec's ``input_names`` (``input_ids, attention_mask, token_type_ids`` for
  BERT / ALBERT), int64, shape (batch, sequence), both axes dynamic;
* one output ``logits``: float32, shape (batch, num_labels), batch axis dynamic.

The example inputs used for tracing are a padded batch of two texts of different lengths, so the
attention-mask path is traced (an all-ones mask may be skipped by transformers' fast paths).

``validate_onnx`` runs the model and the exported file on the same real texts, each at its own
length (batch 1) and all together in padded batches, and reports the largest logit difference and
how often the predicted labels agree.
"""

from __future__ import annotations

import contextlib

import os
import warnings
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["DEFAULT_OPSET", "export_onnx", "onnx_feeds", "onnx_input_names", "validate_onnx"]

#: ONNX opset of exported graphs (17: LayerNormalization is a single op; supported by ORT >= 1.14)
DEFAULT_OPSET = 17

# Texts used to trace the graph: two different lengths, so the batch is padded.
_TRACE_TEXTS = ("a short example", "a somewhat longer example sentence, used to trace the exported graph")


def onnx_input_names(model) -> tuple[str, ...]:
    """The graph input names for ``model``: its architecture spec's ``input_names``, in order."""
    from edgebert.models import get_spec

    return tuple(get_spec(model).input_names)


def onnx_feeds(input_names: Sequence[str], encoded: dict[str, Any]) -> dict[str, np.ndarray]:
    """Input arrays for an ONNX session from a tokenizer's output (numpy or torch values).

    Every name in ``input_names`` gets an int64 array; a name the tokenizer did not produce (e.g.
    ``token_type_ids`` from a tokenizer that omits it) gets zeros shaped like ``input_ids``, which
    is what the PyTorch model assumes when the argument is left out.
    """
    ids = _as_numpy(encoded["input_ids"])
    feeds = {}
    for name in input_names:
        value = encoded.get(name)
        if value is None:
            feeds[name] = np.zeros_like(ids, dtype=np.int64)
        else:
            feeds[name] = _as_numpy(value).astype(np.int64, copy=False)
    return feeds


def _as_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    return np.asarray(x)


class _LogitsOnly:
    """Factory of a ``torch.nn.Module`` that takes the inputs positionally and returns logits only.

    The legacy exporter traces positional arguments; the wrapper fixes their order to the spec's
    ``input_names`` and drops the other fields of the transformers output object.
    """

    @staticmethod
    def build(model, input_names: Sequence[str]):
        import torch

        class LogitsOnly(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model

            def forward(self, *inputs):
                return self.model(**dict(zip(input_names, inputs))).logits  # (batch, num_labels)

        return LogitsOnly()


@contextlib.contextmanager
def eager_attention(model):
    """Run the body with ``model`` on transformers' eager attention; restore the implementation after.

    Export under it for fusion: transformers 5 exports BERT's default ``sdpa`` attention as a
    pattern onnxruntime's attention fusion does not recognize (no ``Attention`` node), while the
    eager pattern fuses on 4.x and 5.x. Models that cannot switch implementation (transformers 4.x
    BERT, whose sdpa export fuses anyway) are left as they are.
    """
    impl = getattr(getattr(model, "config", None), "_attn_implementation", None)
    can_switch = getattr(model, "_can_set_attn_implementation", None)
    if impl in (None, "eager") or not hasattr(model, "set_attn_implementation") \
            or (callable(can_switch) and not can_switch()):
        yield model
        return
    model.set_attn_implementation("eager")
    try:
        yield model
    finally:
        model.set_attn_implementation(impl)


def export_onnx(model, tokenizer, path: str | os.PathLike, *, opset: int = DEFAULT_OPSET) -> Path:
    """Export a transformers sequence classifier to an ONNX file at ``path``; return the path.

    ``model`` is a ``...ForSequenceClassification`` (BERT, ALBERT, RoBERTa: anything with an
    :mod:`edgebert.models.specs` spec) and ``tokenizer`` its tokenizer (used only to build the
    example inputs). The model is exported in eval mode on its current device and dtype and is left
    unchanged (its train/eval mode is restored). Parent folders are created. See the module
    docstring for the graph's inputs and outputs.
    """
    import onnx
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    input_names = onnx_input_names(model)
    device = next(model.parameters()).device
    enc = tokenizer(list(_TRACE_TEXTS), padding="longest", truncation=True, max_length=64, return_tensors="pt")
    ids = enc["input_ids"]
    args = tuple((enc[name] if name in enc else torch.zeros_like(ids)).to(device) for name in input_names)
    dynamic_axes = {name: {0: "batch", 1: "sequence"} for name in input_names}
    dynamic_axes["logits"] = {0: "batch"}
    wrapper = _LogitsOnly.build(model, input_names)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings(), torch.no_grad(), eager_attention(model):
            # The legacy exporter announces its own deprecation and warns about traced constants
            # (shape arithmetic that the dynamic axes make symbolic); neither concerns the user.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", UserWarning)
            torch.onnx.export(
                wrapper, args, str(path), dynamo=False, opset_version=int(opset),
                input_names=list(input_names), output_names=["logits"], dynamic_axes=dynamic_axes,
                do_constant_folding=True,
            )
    finally:
        model.train(was_training)
    onnx.checker.check_model(str(path))  # by path: also works for files with external data
    return path


def _session(onnx_path: str | os.PathLike):
    from edgebert.runtime.backends import open_session

    return open_session(onnx_path)  # on the CPU, errors-only logging


def validate_onnx(model, tokenizer, onnx_path: str | os.PathLike, texts: Sequence[str], *,
                  pairs: Sequence[str] | None = None, max_length: int = 128, batch_size: int = 16) -> dict[str, Any]:
    """Compare an exported ONNX file with the PyTorch model on real ``texts`` (with their second
    sentences ``pairs`` for a sentence-pair task).

    Each text is run alone at its own length (batch 1, no padding) and then all texts together in
    padded batches of ``batch_size`` (exercises the dynamic axes and the attention mask), through
    the model (fp32 on its device) and through onnxruntime (CPU). Returns::

        {"n": texts compared,
         "max_abs_logit_diff": largest |torch - onnx| logit over both passes,
         "max_abs_logit_diff_batch1": ..., "max_abs_logit_diff_padded": ...,
         "label_agreement": fraction of texts whose argmax label is the same in torch and in
                            both onnx passes,
         "min_tokens": ..., "max_tokens": ...}      # lengths of the texts, in tokens
    """
    import torch

    from edgebert.data import encode_texts

    texts = [str(t) for t in texts]
    if not texts:
        from edgebert.errors import DataError

        raise DataError("validate_onnx needs at least one text to compare the export on")
    session = _session(onnx_path)
    names = [i.name for i in session.get_inputs()]
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()

    def torch_logits(enc) -> np.ndarray:
        with torch.inference_mode():
            inputs = {k: v.to(device) for k, v in enc.items() if k in names}
            return model(**inputs).logits.float().cpu().numpy()

    def onnx_logits(enc) -> np.ndarray:
        return np.asarray(session.run(["logits"], onnx_feeds(names, enc))[0], dtype=np.float32)

    try:
        ref1, got1, lengths = [], [], []
        for i in range(len(texts)):
            enc = encode_texts(tokenizer, texts[i:i + 1], _rows(pairs, i, i + 1), truncation=True,
                               max_length=max_length, return_tensors="pt")
            lengths.append(int(enc["input_ids"].shape[1]))
            ref1.append(torch_logits(enc)[0])
            got1.append(onnx_logits(enc)[0])
        refp, gotp = [], []
        for start in range(0, len(texts), batch_size):
            enc = encode_texts(tokenizer, texts[start:start + batch_size], _rows(pairs, start, start + batch_size),
                               padding="longest", truncation=True, max_length=max_length, return_tensors="pt")
            refp.append(torch_logits(enc))
            gotp.append(onnx_logits(enc))
    finally:
        model.train(was_training)
    return comparison_report(ref1, got1, refp, gotp, lengths)


def _rows(pairs: Sequence[str] | None, start: int, stop: int) -> list[str] | None:
    """``pairs[start:stop]`` (None for single texts)."""
    return None if pairs is None else list(pairs[start:stop])


def comparison_report(ref1, got1, refp, gotp, lengths) -> dict:
    """Logit differences and label agreement between a reference and an exported model.

    ``ref1``/``got1``: per-text logits run one at a time at their own length (lists of
    (num_labels,) arrays); ``refp``/``gotp``: padded-batch logits (lists of (batch, num_labels)).
    A text agrees only when both the batch-1 and the padded prediction match the reference.
    """
    import numpy as np

    ref1, got1 = np.stack(ref1), np.stack(got1)  # (n, num_labels)
    refp, gotp = np.concatenate(refp), np.concatenate(gotp)
    diff1 = float(np.abs(ref1 - got1).max())
    diffp = float(np.abs(refp - gotp).max())
    agree = (ref1.argmax(-1) == got1.argmax(-1)) & (refp.argmax(-1) == gotp.argmax(-1))
    return {
        "n": int(ref1.shape[0]),
        "max_abs_logit_diff": max(diff1, diffp),
        "max_abs_logit_diff_batch1": diff1,
        "max_abs_logit_diff_padded": diffp,
        "label_agreement": float(agree.mean()),
        "min_tokens": min(lengths),
        "max_tokens": max(lengths),
    }


def compare_onnx(reference: str | os.PathLike, candidate: str | os.PathLike, tokenizer, texts: Sequence[str], *,
                 pairs: Sequence[str] | None = None, max_length: int = 128, batch_size: int = 16) -> dict[str, Any]:
    """Compare two ONNX files (e.g. fp32 and int8) on real ``texts`` (and ``pairs``), as
    :func:`validate_onnx` does.

    Same protocol and report: every text alone at its own length, then padded batches.
    """
    from edgebert.data import encode_texts

    texts = [str(t) for t in texts]
    if not texts:
        from edgebert.errors import DataError

        raise DataError("compare_onnx needs at least one text to compare the models on")
    ref_s, got_s = _session(reference), _session(candidate)
    names = [i.name for i in ref_s.get_inputs()]

    def run(session, enc) -> np.ndarray:
        out = session.get_outputs()[0].name
        return np.asarray(session.run([out], onnx_feeds(names, enc))[0], dtype=np.float32)

    ref1, got1, lengths = [], [], []
    for i in range(len(texts)):
        enc = dict(encode_texts(tokenizer, texts[i:i + 1], _rows(pairs, i, i + 1), truncation=True,
                                max_length=max_length, return_tensors="np"))
        lengths.append(int(enc["input_ids"].shape[1]))
        ref1.append(run(ref_s, enc)[0])
        got1.append(run(got_s, enc)[0])
    refp, gotp = [], []
    for start in range(0, len(texts), batch_size):
        enc = dict(encode_texts(tokenizer, texts[start:start + batch_size], _rows(pairs, start, start + batch_size),
                                padding="longest", truncation=True, max_length=max_length, return_tensors="np"))
        refp.append(run(ref_s, enc))
        gotp.append(run(got_s, enc))
    return comparison_report(ref1, got1, refp, gotp, lengths)
