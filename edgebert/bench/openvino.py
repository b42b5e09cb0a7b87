"""The ``openvino`` runtime kind of ``edgebert bench``: an OpenVINO IR model (``model.xml`` + ``.bin``)
compiled for the CPU with the bench's thread count (the ``openvino-int8`` baseline,
:func:`edgebert.bench.baselines.build_openvino_int8`).

It imports only openvino and numpy: the memory worker loads it in a fresh process without torch.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def compile_config(threads: int) -> dict[str, str]:
    """The CPU plugin settings of the protocol: the bench's thread count, one stream, latency hint
    (batch 1, one request at a time, as the onnxruntime variants run)."""
    return {"INFERENCE_NUM_THREADS": str(int(threads)), "NUM_STREAMS": "1", "PERFORMANCE_HINT": "LATENCY"}


class OpenVinoRunner:
    """An OpenVINO IR model (``.xml`` + ``.bin``) compiled for the CPU with :func:`compile_config`.

    The interface of :class:`edgebert.bench.variants.Runner`, which opens it (not subclassed: that
    module imports this one)."""

    fell_back_at = None  # never compiled lazily: nothing to fall back from

    def __init__(self, spec: Any, threads: int):
        import openvino as ov

        self.spec = spec
        self.core = ov.Core()
        self.compiled = self.core.compile_model(spec.path, "CPU", compile_config(threads))
        self.request = self.compiled.create_infer_request()
        self.input_names = [port.get_any_name() for port in self.compiled.inputs]
        self.output = next((port for port in self.compiled.outputs if "logits" in port.get_names()),
                           self.compiled.outputs[0])
        # The CPU plugin runs the float parts of the graph at this precision by default (bf16 on CPUs
        # with AMX or AVX-512 BF16): the row's accuracy is the one it gives, so the row says which.
        precision = self.compiled.get_property("INFERENCE_PRECISION_HINT")
        name = precision.get_type_name() if hasattr(precision, "get_type_name") else str(precision)
        note = f"OpenVINO CPU plugin inference precision (float parts): {name}"
        if note not in spec.notes:
            spec.notes.append(note)

    def prepare(self, enc: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from edgebert.export.onnx import onnx_feeds

        return onnx_feeds(self.input_names, enc)

    def __call__(self, prepared):
        self.request.infer(prepared)
        return self.request.get_tensor(self.output).data

    def logits(self, output) -> np.ndarray:
        return np.array(output, dtype=np.float32)  # a copy: the request reuses its output buffer

    def close(self) -> None:
        self.request = self.compiled = self.core = None
