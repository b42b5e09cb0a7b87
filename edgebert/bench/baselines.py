"""The baselines ``edgebert bench --baselines`` adds, built from the first Hugging Face model folder.

1. ``pytorch-fp32``: the folder itself, eager PyTorch fp32 (the default reference);
2. ``onnx-fp32``: :func:`edgebert.export.export_onnx` (torch legacy exporter, opset 17), run by
   onnxruntime; the export's :func:`~edgebert.export.validate_onnx` check is recorded;
3. ``optimum-int8``: the anchor a reader can reproduce without edgebert: Optimum's own ONNX export
   (``ORTModelForSequenceClassification.from_pretrained(folder, export=True)``) quantized by
   ``ORTQuantizer`` with dynamic int8 (``AutoQuantizationConfig.<preset>(is_static=False,
   per_channel=False)``), the preset chosen from the CPU's flags (:func:`optimum_preset`).
   Skipped with a note where optimum / optimum-onnx is not installed.

Failures while building a baseline do not stop the bench: the row is marked failed with the
reason.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import warnings
from pathlib import Path
from typing import Any, Iterator

from edgebert.bench.variants import VariantSpec, load_hf_tokenizer, onnx_files

OPTIMUM_MISSING = "optimum not installed: pip install 'edgebert[optimum]'"
#: names of the built baseline rows (baseline 1 keeps the name of its folder)
BASELINE_NAMES = ("baseline/onnx-fp32", "baseline/optimum-int8")


def optimum_preset(flags: list[str] | None = None, machine: str | None = None) -> tuple[str, str]:
    """(AutoQuantizationConfig preset, why) for this CPU: arm64, avx512_vnni, avx512 or avx2."""
    from edgebert.bench.protocol import cpu_flags

    have = set(cpu_flags() if flags is None else flags)
    machine = (machine or platform.machine()).lower()
    if machine in ("aarch64", "arm64") or "asimd" in have:
        return "arm64", f"machine {machine}"
    if "avx512_vnni" in have:
        return "avx512_vnni", "CPU flag avx512_vnni"
    if "avx512f" in have:
        return "avx512", "CPU flag avx512f without avx512_vnni"
    return "avx2", "CPU flag avx2" if "avx2" in have else "no AVX-512 / ARM flags: the avx2 preset"


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence exporter chatter (tracer warnings, transformers / optimum info logs)."""
    from transformers.utils import logging as hf_logging

    before, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    optimum_logger = logging.getLogger("optimum")
    optimum_level = optimum_logger.level
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()  # transformers 5 shows one per checkpoint load
    optimum_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        hf_logging.set_verbosity(before)
        if bars:
            hf_logging.enable_progress_bar()
        optimum_logger.setLevel(optimum_level)


def _installed(module: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # a parent package missing, or set to None in sys.modules
        return False


def _message(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _onnx_spec(name: str, baseline: str, path: Path, source: VariantSpec, precision: str, **kw: Any) -> VariantSpec:
    return VariantSpec(name=name, kind="onnx", runtime="onnxruntime", path=str(path),
                       tokenizer_dir=source.tokenizer_dir, label_names=source.label_names,
                       precision=precision, role="baseline", baseline=baseline, source=source.path,
                       files=onnx_files(path) if path.is_file() else [], **kw)


def build_onnx_fp32(source: VariantSpec, folder: Path, texts: list[str], *, max_length: int = 128,
                    pairs: list[str] | None = None) -> VariantSpec:
    """Export ``source`` with :func:`export_onnx` into ``folder/onnx-fp32/model.onnx`` and validate it on
    ``texts`` (with ``pairs``, the second sentences of a sentence-pair task)."""
    path = Path(folder) / "onnx-fp32" / "model.onnx"
    try:
        from transformers import AutoModelForSequenceClassification

        from edgebert.export import export_onnx, validate_onnx

        with _quiet():
            model = AutoModelForSequenceClassification.from_pretrained(source.path).float().eval()
            tokenizer = load_hf_tokenizer(source.tokenizer_dir)
            export_onnx(model, tokenizer, path)
            validation = validate_onnx(model, tokenizer, path, texts, pairs=pairs, max_length=max_length)
    except Exception as exc:
        return _onnx_spec(BASELINE_NAMES[0], "onnx-fp32", path, source, "fp32",
                          error=f"export failed: {_message(exc)}")
    return _onnx_spec(BASELINE_NAMES[0], "onnx-fp32", path, source, "fp32", validation=validation,
                      notes=["torch.onnx.export(dynamo=False, opset_version=17), dynamic batch and sequence"])


def build_optimum_int8(source: VariantSpec, folder: Path, preset: str | None = None) -> VariantSpec:
    """Optimum's export + ORTQuantizer dynamic int8 of ``source``, with AutoQuantizationConfig's
    ``preset`` (default: the one :func:`optimum_preset` picks from the CPU's flags)."""
    preset, why = (preset, "chosen by the caller") if preset else optimum_preset()
    name = BASELINE_NAMES[1]
    try:
        from optimum.onnxruntime import ORTModelForSequenceClassification, ORTQuantizer
        from optimum.onnxruntime.configuration import AutoQuantizationConfig
    except ImportError as exc:
        spec = _onnx_spec(name, "optimum-int8", Path(folder) / "optimum-int8" / "model_quantized.onnx",
                          source, "int8")
        if _installed("optimum.onnxruntime"):  # present but broken, e.g. by a transformers it does not support
            spec.skip_reason = (f"optimum is installed but cannot be imported ({_message(exc)}); "
                                "reinstall a matching set: pip install 'edgebert[optimum]'")
        else:
            spec.skip_reason = OPTIMUM_MISSING
        return spec
    exported, quantized = Path(folder) / "optimum-fp32", Path(folder) / "optimum-int8"
    notes = [f"Optimum ONNX export + ORTQuantizer dynamic int8, AutoQuantizationConfig.{preset}"
             f"(is_static=False, per_channel=False) ({why})"]
    try:
        with _quiet():
            model = ORTModelForSequenceClassification.from_pretrained(source.path, export=True)
            model.save_pretrained(exported)
            qconfig = getattr(AutoQuantizationConfig, preset)(is_static=False, per_channel=False)
            ORTQuantizer.from_pretrained(model).quantize(qconfig, save_dir=quantized)
        path = next(iter(sorted(quantized.glob("*.onnx"))))
    except Exception as exc:
        return _onnx_spec(name, "optimum-int8", quantized / "model_quantized.onnx", source, "int8",
                          error=f"optimum export / quantization failed: {_message(exc)}", notes=notes)
    spec = _onnx_spec(name, "optimum-int8", path, source, "int8", notes=notes)
    spec.validation = {"optimum_preset": preset, "preset_reason": why}
    return spec


def build_baselines(source: VariantSpec, folder: Path, texts: list[str], *, max_length: int = 128,
                    on_step=None, pairs: list[str] | None = None) -> list[VariantSpec]:
    """Baselines 2 and 3 for ``source`` (baseline 1 is ``source`` itself, marked in place)."""
    source.baseline = "pytorch-fp32"
    if source.role == "input":
        source.notes.append("baseline 1: PyTorch eager fp32")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    if on_step:
        on_step(BASELINE_NAMES[0], "export + validate")
    out = [build_onnx_fp32(source, folder, texts, max_length=max_length, pairs=pairs)]
    if on_step:
        on_step(BASELINE_NAMES[1], "optimum export + quantize")
    out.append(build_optimum_int8(source, folder))
    return out
