"""What can be benchmarked (variant discovery) and how each runtime runs it (runners).

A *variant* is one deployable model run by one runtime at one precision on one device. The paths
given to ``edgebert bench`` are turned into variants by :func:`discover`:

* a Hugging Face model folder (``config.json`` + weights)    -> runtime ``pytorch`` (eager)
* an ONNX file (``.onnx``, or ``.ort``)                       -> runtime ``onnxruntime``
* a TorchScript file (``.pt`` / ``.pth``, ``torch.jit.save``)  -> runtime ``torchscript``
* a TensorRT engine (``.plan`` / ``.engine``)                 -> runtime ``tensorrt`` (CUDA only)
* an artifact folder (``manifest.json`` + ``model/``)         -> one variant per deployable file in
  ``model/`` (tokenizer/ and labels.json at the artifact root)

A file's tokenizer and labels are looked up beside it and in its parent folder (tokenizer files
or a ``tokenizer/`` subfolder; ``labels.json`` ``{"labels": [...]}`` or ``config.json`` id2label).

This module imports no heavy library at module level: the memory worker imports it in a fresh
process and must load only the runtime of the variant it measures (no torch for an ONNX file).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgebert.errors import ConfigError, ModelLoadError
from edgebert.formats import FILE_RUNTIMES, file_runtime, onnx_precision, torchscript_precision
from edgebert.manifest import engine_file_precision

#: the kinds of path ``edgebert bench`` accepts, with how each is recognised
KINDS: dict[str, str] = {
    "hf": "a Hugging Face model folder (config.json + model.safetensors or pytorch_model.bin), "
          "e.g. written by 'edgebert finetune'",
    "onnx": "an ONNX model file (.onnx or .ort; external data beside it)",
    "torchscript": "a TorchScript file (.pt / .pth saved with torch.jit.save)",
    "tensorrt": "a TensorRT engine (.plan / .engine; needs TensorRT and a CUDA GPU: --device cuda)",
    "artifact": "an artifact folder (manifest.json + model/ holding model.onnx | model.pt | HF files, "
                "with tokenizer/ and labels.json)",
}

#: why a TensorRT engine is skipped on a machine without TensorRT
NO_TENSORRT = "TensorRT not installed: an engine runs where TensorRT and the GPU it was built for are"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt")
RUNTIMES = {"hf": "pytorch", "onnx": "onnxruntime", "torchscript": "torchscript", "tensorrt": "tensorrt",
            "openvino": "openvino"}  # openvino: the --baselines OpenVINO IR (edgebert.bench.openvino)
#: the kind of a model file, from the runtime that runs it (edgebert.formats)
_FILE_KINDS = {runtime: kind for kind, runtime in RUNTIMES.items() if runtime in FILE_RUNTIMES}


def kinds_text() -> str:
    """The supported kinds as one readable list (for error messages)."""
    return "; ".join(KINDS.values())


@dataclass
class VariantSpec:
    """One variant to benchmark: everything a fresh process needs to load and run it."""

    name: str
    kind: str  # hf | onnx | torchscript
    runtime: str  # pytorch | onnxruntime | torchscript
    path: str  # the model file (onnx / torchscript) or folder (hf)
    tokenizer_dir: str | None
    label_names: list[str] | None
    precision: str = "fp32"  # fp32 | fp16 | int8 | mixed | unknown
    device: str = "cpu"
    role: str = "input"  # input | baseline
    baseline: str | None = None  # which baseline this is (pytorch-fp32, onnx-fp32, optimum-int8)
    source: str = ""  # the command-line path it came from
    files: list[str] = field(default_factory=list)  # files counted in the model size
    input_names: list[str] | None = None  # positional input order (torchscript)
    skip_reason: str | None = None  # set for deployable files bench cannot run
    error: str | None = None  # set when building the variant failed (e.g. a baseline export)
    notes: list[str] = field(default_factory=list)
    validation: dict[str, Any] | None = None  # export check of an exported baseline
    torch_compile: str | None = None  # torch.compile mode where the folder's torch_compile.json enables it
    compile_note: str | None = None  # the note (in notes) saying it runs compiled; dropped if compiling fails
    budgets: dict[str, Any] | None = None  # the artifact target's latency / memory budgets (its deployed file)
    threshold: float | None = None  # the artifact's calibrated confidence threshold (its deployed file): below, no answer

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VariantSpec:
        return cls(**data)

    @property
    def size_bytes(self) -> int:
        return sum(Path(f).stat().st_size for f in self.files if Path(f).is_file())


# -- discovery --------------------------------------------------------------------------------

def _is_hf_folder(d: Path) -> bool:
    return (d / "config.json").is_file() and any((d / w).is_file() for w in WEIGHT_FILES)


def is_artifact(d: Path) -> bool:
    return (d / "manifest.json").is_file() and (d / "model").is_dir()


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read {path}: {exc}") from exc


def _config_labels(config_path: Path) -> list[str] | None:
    """Labels of a classifier config.json (None for an encoder without a trained head)."""
    cfg = _read_json(config_path)
    archs = cfg.get("architectures") or []
    id2label = cfg.get("id2label") or {}
    if not id2label or not any(str(a).endswith("ForSequenceClassification") for a in archs):
        return None
    return [str(id2label[k]) for k in sorted(id2label, key=int)]


def find_labels(folder: Path) -> list[str] | None:
    """Labels from ``labels.json`` or a classifier ``config.json`` in ``folder`` or its parent."""
    from edgebert.models import read_labels_file

    for d in (folder, folder.parent):
        labels = read_labels_file(d)
        if labels:
            return labels
        if (d / "config.json").is_file():
            labels = _config_labels(d / "config.json")
            if labels:
                return labels
    return None


def find_tokenizer(folder: Path) -> Path | None:
    """The folder holding the tokenizer files for a model in ``folder``."""
    for d in (folder, folder / "tokenizer", folder.parent, folder.parent / "tokenizer"):
        if any((d / f).is_file() for f in TOKENIZER_FILES):
            return d
    return None


def _input_names_near(folder: Path) -> list[str] | None:
    """The architecture spec's input order, from a config.json beside or above a model file."""
    from edgebert.models.specs import SPECS

    for d in (folder, folder.parent):
        if (d / "config.json").is_file():
            spec = SPECS.get(_read_json(d / "config.json").get("model_type"))
            if spec is not None:
                return list(spec.input_names)
    return None


def onnx_files(path: Path) -> list[str]:
    """The ONNX file and its external-data files (what its size on disk is made of)."""
    files = [path]
    try:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        for init in model.graph.initializer:
            if init.data_location == onnx.TensorProto.EXTERNAL:
                for entry in init.external_data:
                    if entry.key == "location":
                        files.append(path.parent / entry.value)
    except Exception:  # unreadable file: it fails (with its reason) when the runtime loads it
        files += [p for p in (Path(str(path) + ".data"), path.with_suffix(".onnx_data")) if p.is_file()]
    return [str(f) for f in dict.fromkeys(files)]


def _file_kind(path: Path) -> str | None:
    """onnx / torchscript / tensorrt for a model file bench runs, None for any other file."""
    runtime = file_runtime(path)
    return _FILE_KINDS[runtime] if runtime is not None else None


def _file_variant(path: Path, kind: str, *, label_dir: Path, source: str, name: str) -> VariantSpec:
    tok = find_tokenizer(label_dir)
    labels = find_labels(label_dir)
    missing = []
    if tok is None:
        missing.append("a tokenizer (tokenizer.json / tokenizer_config.json, or a tokenizer/ folder)")
    if labels is None:
        missing.append('labels (labels.json {"labels": [...]} or a classifier config.json with id2label)')
    if missing:
        raise ConfigError(
            f"'{path}' has no {' and no '.join(missing)} beside it or in its parent folder; "
            "bench needs both to score it. Put them next to the model file."
        )
    if kind == "onnx":
        files, precision = onnx_files(path), onnx_precision(path)
    elif kind == "tensorrt":
        files, precision = [str(path)], engine_file_precision(path)
    else:
        files, precision = [str(path)], "unknown"  # torchscript: read from the weights once loaded
    skip = NO_TENSORRT if kind == "tensorrt" and not _tensorrt_importable() else None
    return VariantSpec(name=name, kind=kind, runtime=RUNTIMES[kind], path=str(path), tokenizer_dir=str(tok),
                       label_names=labels, precision=precision, source=source, files=files,
                       input_names=_input_names_near(label_dir) if kind == "torchscript" else None,
                       skip_reason=skip)


def _tensorrt_importable() -> bool:
    from edgebert.runtime.backends import tensorrt_available

    return tensorrt_available()


def _hf_variant(folder: Path, *, source: str, name: str) -> VariantSpec:
    labels = _config_labels(folder / "config.json")
    if labels is None:
        raise ModelLoadError(
            f"'{folder}' has no trained classification head (config.json has no "
            "...ForSequenceClassification labels), so there is nothing to score. Fine-tune it first: "
            "edgebert finetune --model ... --data ..."
        )
    files = [str(p) for p in sorted(folder.iterdir())
             if p.name == "config.json" or p.name in WEIGHT_FILES
             or (p.name.startswith(("model-", "pytorch_model-")) and p.suffix in (".safetensors", ".bin"))]
    return VariantSpec(name=name, kind="hf", runtime="pytorch", path=str(folder), tokenizer_dir=str(folder),
                       label_names=labels, precision="fp32", source=source, files=files)


def discover(path: str | Path) -> list[VariantSpec]:
    """The variants a command-line path stands for (see the module doc); ConfigError otherwise.

    Names are provisional (the caller makes them unique). Deployable files in an artifact that
    bench cannot run come back with ``skip_reason`` set.
    """
    p = Path(path).expanduser()
    source = str(path)
    if not p.exists():
        raise ConfigError(f"'{path}' does not exist. bench accepts: {kinds_text()}.")
    if p.is_file():
        kind = _file_kind(p)
        if kind is not None:
            return [_file_variant(p, kind, label_dir=p.parent, source=source, name=f"{p.parent.name}/{p.name}")]
        suffix = p.suffix.lower()
        raise ConfigError(f"'{path}' is a {suffix or 'suffix-less'} file, which bench cannot run. "
                          f"bench accepts: {kinds_text()}.")
    if is_artifact(p):
        return _artifact_variants(p, source)
    if _is_hf_folder(p):
        return [_hf_variant(p, source=source, name=p.name)]
    content = ", ".join(sorted(c.name for c in p.iterdir())[:12]) or "nothing"
    raise ConfigError(f"Folder '{path}' is not a model bench can run (it contains: {content}). "
                      f"bench accepts: {kinds_text()}.")


def _artifact_variants(root: Path, source: str) -> list[VariantSpec]:
    model_dir = root / "model"
    out: list[VariantSpec] = []
    if _is_hf_folder(model_dir):
        spec = _hf_variant(model_dir, source=source, name=f"{root.name}/model")
        spec.tokenizer_dir = str(find_tokenizer(model_dir) or model_dir)  # tokenizer/ at the root
        out.append(spec)
    for f in sorted(model_dir.iterdir()):
        kind = _file_kind(f)
        if kind is not None:
            out.append(_file_variant(f, kind, label_dir=model_dir, source=source, name=f"{root.name}/{f.name}"))
    try:
        manifest = json.loads((root / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        manifest = None
    budgets = _target_budgets(root, manifest)
    if budgets is not None:
        deployed = budgets.pop("deployed")
        for spec in out:
            if Path(spec.path).resolve() in deployed:
                spec.budgets = dict(budgets)
    deploy = manifest.get("deploy") if isinstance(manifest, dict) else None
    if isinstance(deploy, dict) and isinstance(deploy.get("threshold"), (int, float)) and deploy.get("model"):
        for spec in out:  # calibrated on the deployed file: answered as predict / serve answer
            if Path(spec.path).resolve() == (root / str(deploy["model"])).resolve():
                spec.threshold = float(deploy["threshold"])
                spec.notes.append(f"answers below the calibrated confidence {spec.threshold:g} count as "
                                  f"'{deploy.get('unknown_label') or 'unknown'}' (not answered), as predict / serve")
    if not out:
        content = ", ".join(sorted(c.name for c in model_dir.iterdir())[:12]) or "nothing"
        raise ConfigError(f"Artifact '{root}' has no deployable model in model/ (it contains: {content}). "
                          "Expected model.onnx, model.ort, model.pt, model.plan or Hugging Face files.")
    return out


def _target_budgets(root: Path, manifest: Any) -> dict[str, Any] | None:
    """The latency / memory budgets of the artifact's target (its ``manifest``) and the files they apply to
    (the deployed model, and the TensorRT engine where the target runs one); None without budgets."""
    target = manifest.get("target") if isinstance(manifest, dict) else None
    budgets = (target or {}).get("budgets") if isinstance(target, dict) else None
    if not isinstance(budgets, dict) or not any(budgets.get(k) for k in ("latency_ms", "memory_mb")):
        return None
    deploy = manifest.get("deploy") if isinstance(manifest.get("deploy"), dict) else {}
    deployed = {(root / str(deploy["model"])).resolve()} if deploy.get("model") else set()
    if target.get("runtime") == "tensorrt":
        deployed |= {p.resolve() for p in (root / "model").glob("*.plan")}
    fallback = deploy.get("fallback") if isinstance(deploy.get("fallback"), dict) else {}
    for rel in (deploy.get("model"), fallback.get("model")):  # a PyTorch checkpoint is benched as its folder
        if rel and str(rel).endswith(".safetensors"):
            deployed.add((root / str(rel)).parent.resolve())
    return {"target": target.get("name"), "latency_ms": budgets.get("latency_ms"),
            "memory_mb": budgets.get("memory_mb"), "deployed": deployed}


def finetuned_variant(artifact: str | Path) -> VariantSpec:
    """The fine-tuned model an artifact was compressed from, as a PyTorch variant (``--baselines`` for an
    artifact given alone). The manifest knows it: the stages' state names the fine-tuned folder before
    any structural change (``teacher``: the finetune stage's output, or the input model when it already
    had a trained head); a recipe that never set it started from the run's input model. ConfigError,
    saying what to pass, when that folder is not there (any more)."""
    from edgebert.stages.registry import Artifact

    root = Path(artifact)
    manifest = _read_json(root / "manifest.json")
    stages = manifest.get("stages") if isinstance(manifest, dict) else None
    states = [s["state"] for s in stages or [] if isinstance(s, dict) and isinstance(s.get("state"), dict)]
    run = manifest.get("run") if isinstance(manifest, dict) and isinstance(manifest.get("run"), dict) else {}
    recorded = (states[-1].get("teacher") if states else None) or run.get("model_source")
    folder = Artifact(root=root, model=str(recorded)).path(str(recorded)) if recorded else None
    if folder is None or not _is_hf_folder(folder):
        where = f"its manifest names '{recorded}', which is not a model folder here" if recorded else \
            "its manifest names no fine-tuned model"
        raise ConfigError(
            f"--baselines builds from the fine-tuned model '{artifact}' was compressed from, and {where}. "
            f"Pass that fine-tuned folder too: edgebert bench FINETUNED_DIR {artifact} --data DATA --baselines")
    spec = _hf_variant(folder, source=str(artifact), name="baseline/pytorch-fp32")
    spec.role = "baseline"
    spec.notes.append(f"baseline 1: PyTorch eager fp32 of the fine-tuned model {artifact} was compressed from "
                      f"({folder}, from its manifest)")
    return spec


# -- tokenizers -------------------------------------------------------------------------------

def load_hf_tokenizer(tokenizer_dir: str | Path):
    """The transformers (fast) tokenizer in ``tokenizer_dir``."""
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    d = Path(tokenizer_dir)
    try:
        return AutoTokenizer.from_pretrained(str(d))
    except (OSError, ValueError, KeyError) as exc:
        if (d / "tokenizer.json").is_file():
            return PreTrainedTokenizerFast(tokenizer_file=str(d / "tokenizer.json"))
        raise ModelLoadError(f"Cannot load the tokenizer in '{d}': {exc}") from exc


def encode_numpy(tokenizer, texts: list[str], pairs: list[str] | None = None, **kwargs) -> dict[str, np.ndarray]:
    """``tokenizer(texts, pairs, ..., return_tensors="np")`` as a plain dict of int64 arrays."""
    from edgebert.data import encode_texts

    enc = encode_texts(tokenizer, texts, pairs, return_tensors="np", **kwargs)
    return {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}


# -- runners ----------------------------------------------------------------------------------

class Runner:
    """One loaded variant: ``prepare`` inputs once (outside timing), then call it repeatedly.

    ``runner(prepared)`` runs one forward pass and returns when the result is ready (device
    synchronised); ``runner.logits(output)`` turns its output into a (batch, num_labels) array.
    """

    spec: VariantSpec
    fell_back_at: int | None = None  # the call from which a compiled variant ran eager (compiling failed)

    def prepare(self, enc: dict[str, np.ndarray]) -> Any:
        raise NotImplementedError

    def __call__(self, prepared: Any) -> Any:
        raise NotImplementedError

    def logits(self, output: Any) -> np.ndarray:
        return np.asarray(output, dtype=np.float32)

    def close(self) -> None:
        """Release the model (runners hold large buffers)."""


class PytorchRunner(Runner):
    """Eager transformers model (fp32, or fp16 on CUDA), compiled where its torch_compile.json says
    compilation helped on this device type and precision (``spec.torch_compile``)."""

    def __init__(self, spec: VariantSpec):
        import torch
        from transformers import AutoModelForSequenceClassification
        from transformers.utils import logging as hf_logging

        self.spec = spec
        self.torch = torch
        self.device = torch.device(spec.device)
        before, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
        hf_logging.set_verbosity_error()  # no load reports: the folder was checked by discover()
        hf_logging.disable_progress_bar()  # transformers 5 shows one per checkpoint load
        try:
            model = AutoModelForSequenceClassification.from_pretrained(spec.path)
        finally:
            hf_logging.set_verbosity(before)
            if bars:
                hf_logging.enable_progress_bar()
        model = model.to(self.device)
        self.model = (model.half() if spec.precision == "fp16" else model.float()).eval()
        self.eager = None  # the eager model while a compiled one runs: the fallback if compiling fails here
        self.calls = 0
        if spec.torch_compile:  # compiles on the first (warm-up) calls
            from edgebert.export.torch_compile import compile_model

            self.eager, self.model = self.model, compile_model(self.model, spec.torch_compile)
        self.cuda = self.device.type == "cuda"

    def prepare(self, enc):
        return {k: self.torch.from_numpy(np.ascontiguousarray(v)).to(self.device) for k, v in enc.items()}

    def _run(self, model, prepared):
        with self.torch.inference_mode():
            out = model(**prepared).logits
        if self.cuda:
            self.torch.cuda.synchronize()
        return out

    def __call__(self, prepared):
        self.calls += 1
        try:
            return self._run(self.model, prepared)
        except Exception as exc:  # noqa: BLE001 - compiling (lazy, on a call) failed on this host?
            if self.eager is None:  # not compiled (or no longer): the error is eager's own
                raise
            return self._fall_back(prepared, exc)

    def _fall_back(self, prepared, exc: Exception):
        """Where eager answers the call that the compiled model failed, run eager from this call on; the
        variant's notes say so and why. Compiling needs a working inductor backend (a C++ compiler on
        CPUs, Triton on GPUs) that the host the decision was measured on had and this one may lack. An
        error eager raises too (e.g. a bad input) is eager's, raised as it is, and nothing changes."""
        out = self._run(self.eager, prepared)  # raises what eager raises, chained to the compile error
        self.model, self.eager, self.fell_back_at = self.eager, None, self.calls
        cause = getattr(exc, "inner_exception", None) or exc  # BackendCompilerFailed wraps the reason
        text = next((line.strip() for line in str(cause).splitlines() if line.strip()), "")[:200]
        self.spec.notes[:] = [n for n in self.spec.notes if n != self.spec.compile_note]
        self.spec.torch_compile = self.spec.compile_note = None
        self.spec.notes.append(
            f"torch.compile failed on this host at call {self.calls} ({type(cause).__name__}"
            f"{': ' + text if text else ''}); measured eager from that call on, although the checkpoint's "
            "torch_compile.json enables compiling for this device type")
        return out

    def logits(self, output):
        return output.float().cpu().numpy()

    def close(self):
        self.model = self.eager = None


class TorchScriptRunner(Runner):
    """A ``torch.jit`` module called with the inputs by name (or positionally, in spec order)."""

    _DEFAULT_ORDER = ("input_ids", "attention_mask", "token_type_ids")

    def __init__(self, spec: VariantSpec):
        import torch

        from edgebert.runtime.backends import load_torchscript

        self.spec = spec
        self.torch = torch
        self.device = torch.device(spec.device)
        self.module = load_torchscript(spec.path, self.device)
        self.cuda = self.device.type == "cuda"
        args = [a.name for a in self.module.forward.schema.arguments][1:]  # drop self
        known = set(self._DEFAULT_ORDER)
        if args and all(a in known for a in args):
            self.order = args  # scripted / traced with named arguments
        else:  # traced through *args: argument names are arbitrary, the order is the spec's
            order = spec.input_names or list(self._DEFAULT_ORDER)
            self.order = order[:len(args)] if args else order
        if spec.precision == "unknown":
            spec.precision = torchscript_precision(self.module)

    def prepare(self, enc):
        ids = enc["input_ids"]
        return tuple(self.torch.from_numpy(np.ascontiguousarray(enc.get(n, np.zeros_like(ids)))).to(self.device)
                     for n in self.order)

    def __call__(self, prepared):
        with self.torch.no_grad():
            out = self.module(*prepared)
        if self.cuda:
            self.torch.cuda.synchronize()
        return out

    def logits(self, output):
        if isinstance(output, dict):
            output = output["logits"]
        elif isinstance(output, (tuple, list)):
            output = output[0]
        elif hasattr(output, "logits"):
            output = output.logits
        return output.float().cpu().numpy()

    def close(self):
        self.module = None


class OnnxRunner(Runner):
    """The runtime's onnxruntime backend, its session opened as the device runtime opens it (the
    protocol's threads, spinning off: :func:`edgebert.bench.protocol.ort_session_options`) on the
    protocol's providers."""

    def __init__(self, spec: VariantSpec, threads: int):
        import onnxruntime as ort

        from edgebert.bench.protocol import ort_providers
        from edgebert.runtime import textin
        from edgebert.runtime.backends import OnnxBackend
        from edgebert.runtime.backends.onnx import session_options

        self.spec = spec
        self.requested = ort_providers(spec.device)
        available = set(ort.get_available_providers())  # asking for one not built in only makes ORT warn
        # as the runtime opens it: a text-in graph with onnxruntime-extensions' operators, any other as it is
        session = textin.open_session(spec.path, session_options(threads), [p for p in self.requested if p in available])
        self.backend = OnnxBackend(session, spec.path)
        # what runs the model: a CUDA provider that is not built in, or fails to start, leaves the CPU
        self.providers = self.backend.providers
        self.input_names = self.backend.input_names
        #: the graph takes strings and tokenizes inside: it is fed texts (prepare_texts), and its timings
        #: include the tokenization
        self.text_in = textin.is_text_in(session)
        if self.text_in:
            spec.notes.append("text-in: fed strings; its latency includes the tokenization inside the graph")

    def prepare(self, enc):
        from edgebert.export.onnx import onnx_feeds

        return self.backend.feeds(onnx_feeds(self.input_names, enc))

    def prepare_texts(self, texts, pairs=None):
        """The feeds of a text-in graph for ``texts`` (sentence pairs are refused, as the runtime does)."""
        from edgebert.runtime import textin

        if pairs is not None:
            textin.string_batches(texts, pairs, len(texts))  # raises the runtime's DataError
        return self.backend.feeds(textin.text_feeds(texts))

    def __call__(self, prepared):
        return self.backend.run(prepared)

    def close(self):
        self.backend = None


class TensorRTRunner(Runner):
    """The runtime's TensorRT engine on the GPU (:class:`edgebert.runtime.backends.tensorrt.Engine`):
    inputs are moved to the GPU in ``prepare`` (outside timing, as for the other CUDA runners); each
    call sets the shapes, runs and synchronises."""

    def __init__(self, spec: VariantSpec):
        from edgebert.runtime.backends import Engine

        if spec.device != "cuda":
            raise ConfigError(f"'{spec.path}' is a TensorRT engine, which runs on a CUDA GPU only: bench --device cuda.")
        self.spec = spec
        self.engine = Engine(spec.path)

    def prepare(self, enc):
        return self.engine.to_device(enc)

    def __call__(self, prepared):
        return self.engine(prepared)

    def logits(self, output):
        return self.engine.logits(output)

    def close(self):
        self.engine = None


def open_runner(spec: VariantSpec, threads: int) -> Runner:
    """Load ``spec`` in its runtime. Runtime errors propagate with the runtime's own message."""
    if spec.runtime == "pytorch":
        return PytorchRunner(spec)
    if spec.runtime == "torchscript":
        return TorchScriptRunner(spec)
    if spec.runtime == "onnxruntime":
        return OnnxRunner(spec, threads)
    if spec.runtime == "tensorrt":
        return TensorRTRunner(spec)
    if spec.runtime == "openvino":
        from edgebert.bench.openvino import OpenVinoRunner

        return OpenVinoRunner(spec, threads)
    known = ", ".join(sorted(set(RUNTIMES.values())))
    raise ConfigError(f"Runtime '{spec.runtime}' cannot be benchmarked. Known: {known}.")
