"""``torch.compile`` for the PyTorch fallback, used only where it measurably helps.

The ``export-pytorch`` stage measures, on the device compress runs on, the batch-1 median latency of
the saved checkpoint in eager mode and compiled (``torch.compile(model, mode=..., dynamic=True)``,
so varying sentence lengths do not recompile), on the same real dev sentences at their own lengths,
alternating eager and compiled call by call after a warm-up that pays the compilation. It checks the
compiled logits against eager ones, and writes the decision into ``torch_compile.json`` beside the
checkpoint::

    {"cuda": {"enabled": true, "mode": "default", "dynamic": true, "reason": "...",
              "measured": {"device": "NVIDIA ...", "eager_p50_ms": ..., "compiled_p50_ms": ...,
                           "speedup": ..., "compile_s": ..., "max_abs_logit_diff": ..., ...}}}

keyed by device type: a decision measured on a GPU says nothing about a CPU, so a runner on another
device type finds no entry and stays eager. ``edgebert bench`` applies it.

Compilation needs a working inductor backend (a C++ compiler on CPU, Triton on CUDA); when it fails,
the failure is the recorded reason and the checkpoint stays eager.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

COMPILE_FILE = "torch_compile.json"
MODES = ("default", "reduce-overhead", "max-autotune")
MIN_AGREEMENT = 0.99  # share of timed sentences whose label must not change, as for every export


def compile_model(model, mode: str = "default"):
    """``torch.compile`` of ``model`` for varying sequence lengths (``dynamic=True``)."""
    import torch

    if mode not in MODES:
        from edgebert.errors import ConfigError

        raise ConfigError(f"Unknown torch.compile mode '{mode}'. Known: {', '.join(MODES)}.")
    return torch.compile(model, mode=mode, dynamic=True)


def _device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    from edgebert.artifact import host_info

    return host_info().get("processor") or "cpu"


def _timed(model, inputs, sync) -> tuple[float, Any]:
    import torch

    t0 = time.perf_counter()
    with torch.inference_mode():
        logits = model(**inputs).logits
    sync()
    return (time.perf_counter() - t0) * 1000.0, logits


def measure(model, tokenizer, texts: Sequence[str], *, device, mode: str = "default", rounds: int = 3,
            warmup: int = 3, max_length: int = 128, pairs: Sequence[str] | None = None) -> dict[str, Any]:
    """Eager vs compiled batch-1 latency of ``model`` on ``texts`` (each at its own length) on ``device``.

    Eager and compiled calls alternate on the same input, ``rounds`` passes over ``texts``, after
    ``warmup`` passes that compile (the first compiled call's seconds are ``compile_s``). Returns the
    medians, their ratio ``speedup`` (eager / compiled; > 1 means compiled is faster), the largest
    logit difference and the label agreement between the two. ``pairs``: second segments of
    sentence-pair tasks. Raises what torch.compile raises.
    """
    import os

    import torch

    model = model.to(device).eval()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def encode(i: int, text: str):
        args = ([text], [pairs[i]]) if pairs is not None else ([text],)
        return {k: v.to(device) for k, v in tokenizer(*args, truncation=True, max_length=max_length,
                                                      return_tensors="pt").items()}

    encoded = [encode(i, t) for i, t in enumerate(texts)]
    loadavg = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    compiled = compile_model(model, mode)
    t0 = time.perf_counter()
    _timed(compiled, encoded[0], sync)
    compile_s = time.perf_counter() - t0
    diffs, agree = [], []
    for _ in range(warmup):
        for inputs in encoded:
            _, ref = _timed(model, inputs, sync)
            _, got = _timed(compiled, inputs, sync)
            diffs.append(float((ref.float() - got.float()).abs().max()))
            agree.append(bool((ref.argmax(-1) == got.argmax(-1)).all()))
    eager_ms, compiled_ms = [], []
    for r in range(rounds):
        for inputs in encoded:
            pair = [(model, eager_ms), (compiled, compiled_ms)]
            for m, sink in pair if r % 2 == 0 else pair[::-1]:  # who goes first alternates by round
                sink.append(_timed(m, inputs, sync)[0])
    eager_p50, compiled_p50 = statistics.median(eager_ms), statistics.median(compiled_ms)
    return {"device": _device_name(device), "device_type": device.type, "mode": mode, "dtype": str(
            next(model.parameters()).dtype).replace("torch.", ""), "texts": len(texts), "rounds": rounds,
            "length_range": _length_range(encoded),
            "eager_p50_ms": round(eager_p50, 4), "compiled_p50_ms": round(compiled_p50, 4),
            "speedup": round(eager_p50 / compiled_p50, 4), "compile_s": round(compile_s, 2),
            "max_abs_logit_diff": float(np.max(diffs)), "label_agreement": float(np.mean(agree)),
            "torch": torch.__version__, "torch_threads": torch.get_num_threads(), "loadavg_start": loadavg}


def _length_range(encoded) -> list[int]:
    lengths = [int(e["input_ids"].shape[1]) for e in encoded]
    return [min(lengths), max(lengths)]


def decide(measured: dict[str, Any] | None, *, policy: str, min_speedup: float,
           max_logit_diff: float, error: str | None = None, mode: str = "default") -> dict[str, Any]:
    """The ``torch_compile.json`` entry for one device type from a measurement (or its failure).

    ``policy`` auto enables compilation when it was at least ``min_speedup`` times faster and its
    logits stay within ``max_logit_diff`` of eager (labels agreeing on ``MIN_AGREEMENT`` of the texts); on forces it (still measured and recorded,
    unless compilation failed); off records that it was not tried.
    """
    entry: dict[str, Any] = {"enabled": False, "mode": mode, "dynamic": True, "policy": policy,
                             "measured": measured}
    if policy == "off":
        entry["reason"] = "compile: off in the recipe"
    elif error is not None:
        entry["reason"] = f"torch.compile failed here, the checkpoint stays eager: {error}"
    elif measured is None:
        entry["reason"] = "not measured"
    elif not measured["max_abs_logit_diff"] <= max_logit_diff or measured["label_agreement"] < MIN_AGREEMENT:
        entry["reason"] = (f"compiled logits differ from eager by {measured['max_abs_logit_diff']:.2e} (allowed "
                           f"{max_logit_diff:.0e}), label agreement {measured['label_agreement']:.3f}")
    elif policy == "on":
        entry.update(enabled=True, reason=f"compile: on in the recipe (measured {measured['speedup']:.2f}x)")
    elif measured["speedup"] >= min_speedup:
        entry.update(enabled=True, reason=f"{measured['speedup']:.2f}x faster than eager at batch 1 on "
                                          f"{measured['device']} (needed {min_speedup:.2f}x)")
    else:
        entry["reason"] = (f"only {measured['speedup']:.2f}x eager's speed at batch 1 on {measured['device']} "
                           f"(needed {min_speedup:.2f}x): eager is kept")
    return entry


def read_settings(folder: str | Path) -> dict[str, Any] | None:
    """The decisions in ``folder/torch_compile.json`` (keyed by device type), or None."""
    path = Path(folder) / COMPILE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        from edgebert.errors import ModelLoadError

        raise ModelLoadError(f"Cannot read {path}: {exc}. Delete it to run the checkpoint eager.") from exc
    return data if isinstance(data, dict) else None


def compile_choice(settings: dict[str, Any] | None, device_type: str,
                   dtype: str) -> tuple[str | None, str | None]:
    """``(mode, note)`` for a checkpoint run on ``device_type`` in ``dtype`` (float32 / float16), from its
    ``torch_compile.json`` decisions: ``mode`` where the decision for that device type enables compilation
    and was measured in that dtype (else None: eager), ``note`` what a report should say (None: no
    decision for that device type, e.g. one measured on a GPU when running on a CPU)."""
    entry = (settings or {}).get(device_type)
    if not isinstance(entry, dict):
        return None, None
    measured = entry.get("measured") or {}
    if not entry.get("enabled"):
        return None, f"eager: {entry.get('reason')}"
    if measured.get("dtype") not in (None, dtype):
        return None, f"eager: torch.compile was measured for {measured.get('dtype')}, this variant runs {dtype}"
    mode = entry.get("mode", "default")
    return mode, (f"torch.compile (mode {mode}, dynamic shapes): {entry.get('reason')}; its peak memory includes "
                  "compiling in that process, memory.first_call_s the compile time")
