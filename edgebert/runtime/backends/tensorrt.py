"""The TensorRT backend: a serialized engine (``.plan`` / ``.engine``) run on a CUDA GPU.

An engine needs TensorRT and torch (for its CUDA buffers) on the GPU (and TensorRT and CUDA versions)
it was built for: the torch-free runtime's own backends are onnxruntime and TorchScript; engines are
for GPU hosts (or serve them with Triton). Engines are built by :mod:`edgebert.export.tensorrt`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.errors import ConfigError, ExportError, MissingDependencyError

__all__ = ["Engine", "TensorRTBackend", "import_tensorrt", "run_engine", "tensorrt_available"]

def tensorrt_available() -> bool:
    """True when ``import tensorrt`` works."""
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def import_tensorrt():
    """``import tensorrt`` (version 10 or newer), MissingDependencyError / ExportError otherwise."""
    try:
        import tensorrt as trt
    except ImportError as exc:
        raise MissingDependencyError(
            "tensorrt", extra="tensorrt",
            purpose="building TensorRT engines in Python; TensorRT not installed on this machine. To build "
                    "on a Jetson, run the trtexec script from write_build_script() on the device",
        ) from exc
    major = int(str(trt.__version__).split(".")[0])
    if major < 10:
        raise ExportError(f"TensorRT {trt.__version__} is too old: edgebert builds engines with TensorRT >= 10.")
    return trt


class Engine:
    """A serialized engine loaded once, run many times (TensorRT 10 name-based I/O API).

    Device buffers are torch CUDA tensors; each call sets the input shapes, runs
    ``IExecutionContext.execute_async_v3`` on the engine's own CUDA stream (TensorRT warns about,
    and synchronises extra on, the default stream) and waits for it, so a call returns when the
    result is ready (what a latency measures). Batches larger than the optimization profile's
    maximum run in profile-sized chunks; a sequence longer than its maximum is an error.
    """

    def __init__(self, plan_path: str | os.PathLike):
        try:
            import torch
        except ImportError as exc:
            raise MissingDependencyError("torch", purpose="CUDA buffers for a TensorRT engine") from exc

        trt = import_tensorrt()
        if not torch.cuda.is_available():
            raise ExportError("Running a TensorRT engine needs a CUDA GPU; none is visible to torch.")
        self.torch, self.trt, self.path = torch, trt, Path(plan_path)
        self.logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(self.logger)
        self.engine = self.runtime.deserialize_cuda_engine(self.path.read_bytes())
        if self.engine is None:
            raise ExportError(f"TensorRT could not load '{plan_path}' (built for another GPU or TensorRT version?).")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        mode = self.engine.get_tensor_mode
        self.inputs = [n for n in names if mode(n) == trt.TensorIOMode.INPUT]
        self.outputs = [n for n in names if mode(n) == trt.TensorIOMode.OUTPUT]
        self.dtypes = {n: np.dtype(trt.nptype(self.engine.get_tensor_dtype(n))) for n in names}
        # (batch, sequence) bounds of profile 0, the one edgebert builds: (min, opt, max) per input
        profile = {n: [tuple(d) for d in self.engine.get_tensor_profile_shape(n, 0)] for n in self.inputs}
        self.max_batch = min(p[2][0] for p in profile.values())
        self.max_length = min(p[2][1] for p in profile.values())
        self.min_length = max(p[0][1] for p in profile.values())

    def to_device(self, feeds: Mapping[str, np.ndarray]) -> dict[str, Any]:
        """The engine's inputs as contiguous CUDA tensors of its dtypes (absent token_type_ids: zeros)."""
        out = {}
        first = np.asarray(next(iter(feeds.values())))
        for name in self.inputs:
            array = np.asarray(feeds[name]) if name in feeds else np.zeros_like(first)
            array = np.ascontiguousarray(array.astype(self.dtypes[name], copy=False))
            out[name] = self.torch.from_numpy(array).cuda()
        return out

    def __call__(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        """Run on device tensors from :meth:`to_device` (numpy arrays are moved first); return the
        outputs as CUDA tensors, synchronised."""
        if any(isinstance(v, np.ndarray) for v in inputs.values()):
            inputs = self.to_device(inputs)
        batch, length = tuple(inputs[self.inputs[0]].shape)
        if not self.min_length <= length <= self.max_length:
            raise ConfigError(f"'{self.path}' was built for sequences of {self.min_length}..{self.max_length} tokens; "
                              f"got {length}. Truncate inputs to {self.max_length} tokens (max_length) or rebuild "
                              "the engine with other shapes.")
        if batch <= self.max_batch:
            return self._run(inputs)
        chunks = [self._run({n: t[i:i + self.max_batch] for n, t in inputs.items()})
                  for i in range(0, batch, self.max_batch)]
        return {name: self.torch.cat([c[name] for c in chunks]) for name in self.outputs}

    def _run(self, inputs: Mapping[str, Any]) -> dict[str, Any]:
        context, torch = self.context, self.torch
        self.stream.wait_stream(torch.cuda.current_stream())  # inputs were copied on the current stream
        with torch.cuda.stream(self.stream):
            for name in self.inputs:
                if not context.set_input_shape(name, tuple(inputs[name].shape)):
                    raise ConfigError(f"'{self.path}' refused input '{name}' of shape {tuple(inputs[name].shape)} "
                                      "(outside its optimization profile).")
                context.set_tensor_address(name, int(inputs[name].data_ptr()))
            outputs = {}
            for name in self.outputs:
                shape = tuple(context.get_tensor_shape(name))
                outputs[name] = torch.empty(shape, dtype=getattr(torch, self.dtypes[name].name), device="cuda")
                context.set_tensor_address(name, int(outputs[name].data_ptr()))
            if not context.execute_async_v3(self.stream.cuda_stream):
                raise ExportError(f"TensorRT execution of '{self.path}' failed.")
        self.stream.synchronize()
        return outputs

    def logits(self, outputs: Mapping[str, Any]) -> np.ndarray:
        """The ``logits`` output (else the first) as a float32 numpy array."""
        out = outputs["logits"] if "logits" in outputs else outputs[self.outputs[0]]
        return out.float().cpu().numpy()


def run_engine(plan_path: str | os.PathLike, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Load a serialized engine, run it once on ``feeds`` (name -> array); every output as numpy."""
    return {name: tensor.cpu().numpy() for name, tensor in Engine(plan_path)(feeds).items()}


class TensorRTBackend:
    """A serialized TensorRT engine (:class:`Engine`, loaded once on first use), for the classifier."""

    providers = ["tensorrt"]
    fixed_batch = fixed_length = None  # the engine's optimization profile bounds them; not padded to

    def __init__(self, path: Path, *, input_names: Sequence[str]):
        if importlib.util.find_spec("tensorrt") is None:
            raise MissingDependencyError(
                "TensorRT", extra="tensorrt",
                purpose=f"the engine '{path}'; on a machine without TensorRT run the artifact's ONNX file")
        self.path = path
        self.input_names = list(input_names)
        self.input_dtypes = {n: np.int64 for n in self.input_names}
        self._engine = None

    def __call__(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        if self._engine is None:
            self._engine = Engine(self.path)
        return self._engine.logits(self._engine(feeds))
