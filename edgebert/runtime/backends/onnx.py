"""The onnxruntime backend (``.onnx`` / ``.ort``): the one place edgebert opens onnxruntime sessions.

:func:`session_options` holds the settings every session gets, :func:`open_session` opens one;
the device runtime (:class:`edgebert.runtime.Classifier`), ``edgebert bench``, the export and
quantization checks all go through them, so a benchmark times a model with the session a device
runs it with. Imports onnxruntime on first use, never torch.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from edgebert.errors import RuntimeLoadError

__all__ = [
    "CPU", "OnnxBackend", "ProviderFallbackWarning", "available_providers", "open_session", "provider_fallback",
    "session_options",
]

CPU = "CPUExecutionProvider"


def session_options(threads: int | None = None, config: Mapping[str, str] | None = None,
                    custom_ops: str | None = None):
    """onnxruntime ``SessionOptions`` as edgebert runs every model: ``threads`` intra-op threads (None:
    onnxruntime's default, one per core), one inter-op thread with the sequential executor, all graph
    optimizations, thread spinning off, errors-only logging; ``config``: extra session config entries;
    ``custom_ops``: a custom-operator library to register (onnxruntime-extensions' for text-in models)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only: ORT warns about unused initializers etc.
    # Spinning keeps idle worker threads busy-waiting after each call: on a phone or a shared server
    # that is battery and CPU taken from everything else, for little latency gained; in bench's
    # interleaved rounds it steals the cores from the next variant (int8 MiniLM p50 4.4 ms -> 17.6 ms).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    for key, value in (config or {}).items():
        options.add_session_config_entry(key, value)
    if custom_ops:
        options.register_custom_ops_library(str(custom_ops))
    return options


def open_session(path: str | os.PathLike, *, threads: int | None = None, providers: Sequence[str] | None = None,
                 config: Mapping[str, str] | None = None, custom_ops: str | None = None):
    """An onnxruntime ``InferenceSession`` on ``path`` with :func:`session_options` (``threads``,
    ``config``, ``custom_ops``) on ``providers`` (default: the CPU). onnxruntime's own errors propagate."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), session_options(threads, config, custom_ops),
                                providers=list(providers or [CPU]))


def available_providers(wanted: Sequence[str]) -> list[str]:
    """The providers of ``wanted`` this onnxruntime build has, in order, CPU last as the fallback: an
    artifact built for a GPU target still runs on a CPU-only install (and says so: see
    :func:`provider_fallback`)."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    chosen = [p for p in wanted if p in available and p != CPU]
    return chosen + [CPU]


class ProviderFallbackWarning(RuntimeWarning):
    """The model runs on another execution provider than the one asked for (e.g. a GPU target's
    artifact on the CPU): it works, at other speed and memory than the target was measured at."""


def provider_fallback(requested: Sequence[str], used: Sequence[str]) -> str | None:
    """What of ``requested`` (execution providers, in priority order) onnxruntime does not use, said
    in one sentence, or None when the first requested one runs the model. ``used``: the session's
    providers (``InferenceSession.get_providers()``)."""
    if not requested or not used or requested[0] == used[0]:
        return None
    try:
        import onnxruntime as ort

        built = set(ort.get_available_providers())
    except ImportError:  # pragma: no cover - callers hold a session
        built = set()
    dropped = [p for p in requested if p not in used]
    if not dropped:
        return None
    why = []
    absent = [p for p in dropped if p not in built]
    failed = [p for p in dropped if p in built]
    if absent:
        gpu = " (for CUDA / TensorRT: pip install onnxruntime-gpu)" if any(
            p in ("CUDAExecutionProvider", "TensorrtExecutionProvider") for p in absent) else ""
        why.append(f"{', '.join(absent)} {'is' if len(absent) == 1 else 'are'} not in this onnxruntime build{gpu}")
    if failed:
        why.append(f"{', '.join(failed)} failed to start (e.g. its CUDA / cuDNN libraries or the device "
                   "are missing)")
    return (f"execution provider {requested[0]} was requested but the model runs on {used[0]}: "
            f"{'; '.join(why)}")


class OnnxBackend:
    """An onnxruntime session (``.onnx`` or ``.ort``): feeds (name -> token id array) in, logits
    (batch, labels) out.

    ``OnnxBackend(session, path)`` wraps an open session; :meth:`load` opens one as the device runtime
    does (every provider asked for must be in this onnxruntime build; errors as RuntimeLoadError).
    """

    def __init__(self, session, path: str | os.PathLike):
        self.session = session
        self.requested = None  # the providers asked for, where the caller knows them
        # onnxruntime drops a provider that fails to start (a CUDA or cuDNN library missing, no GPU)
        # with a log line only, and runs on the next one: what it actually uses is the session's list
        self.providers = self.session.get_providers()
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.input_dtypes = {}
        for i in self.session.get_inputs():
            dtype = {"tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(string)": object}.get(i.type)
            if dtype is None:
                raise RuntimeLoadError(f"'{path}': input '{i.name}' is {i.type}; the runtime feeds token ids "
                                       "(int64 or int32) or, to a text-in model, strings.")
            self.input_dtypes[i.name] = dtype
        # Graphs exported with static shapes (some mobile / accelerator builds) take exactly this
        # batch size and sequence length: the classifier pads to them.
        dims = [i.shape for i in self.session.get_inputs() if len(i.shape) == 2]
        self.fixed_batch = next((d[0] for d in dims if isinstance(d[0], int) and d[0] > 0), None)
        self.fixed_length = next((d[1] for d in dims if isinstance(d[1], int) and d[1] > 0), None)
        outputs = [o.name for o in self.session.get_outputs()]
        self.output_name = "logits" if "logits" in outputs else outputs[0]

    @classmethod
    def load(cls, path: Path, *, threads: int | None, providers: Sequence[str] | None) -> OnnxBackend:
        """Open ``path`` on ``providers`` (all required; None: the CPU) with ``threads`` intra-op threads."""
        import onnxruntime as ort

        available = ort.get_available_providers()
        providers = list(providers) if providers else [CPU]
        missing = [p for p in providers if p not in available]
        if missing:
            raise RuntimeLoadError(f"Execution provider(s) {', '.join(missing)} not available in this "
                                   f"onnxruntime build; available: {', '.join(available)}.")
        from edgebert.errors import EdgebertError
        from edgebert.runtime import textin

        try:
            # a text-in graph (the tokenizer inside) is opened with onnxruntime-extensions' operators
            session = textin.open_session(path, session_options(threads), providers)
        except EdgebertError:
            raise
        except Exception as exc:  # onnxruntime raises its own pybind exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise RuntimeLoadError(f"onnxruntime cannot load '{path}': {first}") from exc
        backend = cls(session, path)
        backend.requested = providers
        return backend

    def feeds(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``feeds`` in the dtypes the graph declares (int64 or int32)."""
        return {k: v.astype(self.input_dtypes[k], copy=False) for k, v in feeds.items()}

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """Logits of feeds already in the graph's dtypes (:meth:`feeds`)."""
        return self.session.run([self.output_name], feeds)[0]

    def __call__(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        return self.run(self.feeds(feeds))
