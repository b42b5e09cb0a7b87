"""The baselines ``edgebert bench --baselines`` adds, built from the first Hugging Face model folder.

1. ``pytorch-fp32``: the folder itself, eager PyTorch fp32 (the default reference);
2. ``onnx-fp32``: :func:`edgebert.export.export_onnx` (torch legacy exporter, opset 17), run by
   onnxruntime; the export's :func:`~edgebert.export.validate_onnx` check is recorded;
3. ``optimum-int8``: the anchor a reader can reproduce without edgebert: Optimum's own ONNX export
   (``ORTModelForSequenceClassification.from_pretrained(folder, export=True)``) quantized by
   ``ORTQuantizer`` with dynamic int8 (``AutoQuantizationConfig.<preset>(is_static=False,
   per_channel=False)``), the preset chosen from the CPU's flags (:func:`optimum_preset`);
   ``optimum-int8-avx2`` the same with the AVX2 preset, where the CPU's preset is another x86 one;
4. ``optimum-o3-int8``: what an Optimum user who also runs its graph optimizer gets: the same export,
   ``ORTOptimizer`` with ``AutoOptimizationConfig.O3()`` (transformer fusions + GELU approximation),
   then dynamic int8 at the same preset settings. ``ORTQuantizer`` fails on the fused graph
   ("Unable to find data type for weight_name ...": shape inference cannot type the fused contrib
   ops), so the graph is quantized by onnxruntime's ``quantize_dynamic`` with the arguments
   ``ORTQuantizer`` derives from the preset plus ``DefaultTensorType=FLOAT`` (:func:`preset_arguments`);
   ``optimum-o3-int8-avx2`` with the AVX2 preset, as for 3;
5. ``openvino-int8``: OpenVINO IR of the PyTorch model (``openvino.convert_model``), NNCF post-training
   int8 (``ModelType.TRANSFORMER``, ``QuantizationPreset.MIXED``) calibrated on up to 300 training
   sentences, run by the OpenVINO runtime (:mod:`edgebert.bench.openvino`);
6. ``edgebert-fused-int8``: edgebert's own export of the *unpruned* model, fused as the
   ``export-onnx`` stage does (:func:`edgebert.export.fuse_onnx`) and quantized to dynamic int8 by
   :func:`edgebert.compress.quantize.quantize_onnx` with the ``quantize`` stage's defaults: the
   table then separates what fusion buys from what pruning and distillation buy.

Optimum rows are skipped with a note where optimum / optimum-onnx is not installed, the OpenVINO row
where openvino / nncf is not. Failures while building a baseline do not stop the bench: the row is
marked failed with the reason.

:func:`headline` names the *strongest baseline* (the fastest third-party row within 1 point of the
fp32 model's accuracy) and every edgebert row's p50 speed-up against it and against Optimum's
unoptimized AVX2 int8.
"""

from __future__ import annotations

import contextlib
import io
import logging
import platform
import warnings
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from edgebert.bench.variants import VariantSpec, load_hf_tokenizer, onnx_files

OPTIMUM_MISSING = "optimum not installed: pip install 'edgebert[optimum]'"
OPENVINO_MISSING = "openvino / nncf not installed: pip install 'edgebert[openvino]'"
#: the built baseline rows, in build order (baseline 1 keeps the name of its folder); which of the
#: ``-avx2`` rows are built depends on the CPU (:func:`baseline_names`)
BASELINE_NAMES = ("baseline/onnx-fp32", "baseline/optimum-int8", "baseline/optimum-int8-avx2",
                  "baseline/optimum-o3-int8", "baseline/optimum-o3-int8-avx2", "baseline/openvino-int8",
                  "baseline/edgebert-fused-int8")
#: the baselines a user can build without edgebert: the candidates for the strongest baseline
THIRD_PARTY = ("pytorch-fp32", "onnx-fp32", "optimum-int8", "optimum-int8-avx2", "optimum-o3-int8",
               "optimum-o3-int8-avx2", "openvino-int8")
#: accuracy budget of the strongest baseline, in points below the fp32 model
HEADLINE_BUDGET_POINTS = 1.0
#: training sentences NNCF calibrates the OpenVINO baseline on (OpenVINO's post-training guide: about 300)
OPENVINO_CALIBRATION = 300


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


def avx2_too(preset: str) -> bool:
    """Whether the Optimum rows are also built with the AVX2 preset: where the CPU's preset is another
    x86 one (AVX-512, VNNI), so the table shows the anchor the goals name beside the CPU's own."""
    return preset not in ("avx2", "arm64")


def baseline_names(preset: str | None = None) -> list[str]:
    """The baseline rows ``--baselines`` builds on this CPU (``preset``: :func:`optimum_preset`'s)."""
    preset = preset or optimum_preset()[0]
    return [n for n in BASELINE_NAMES if not n.endswith("-avx2") or avx2_too(preset)]


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
        return _onnx_spec("baseline/onnx-fp32", "onnx-fp32", path, source, "fp32",
                          error=f"export failed: {_message(exc)}")
    return _onnx_spec("baseline/onnx-fp32", "onnx-fp32", path, source, "fp32", validation=validation,
                      notes=["torch.onnx.export(dynamo=False, opset_version=17), dynamic batch and sequence"])



def _optimum_skip(spec: VariantSpec, exc: ImportError) -> VariantSpec:
    if _installed("optimum.onnxruntime"):  # present but broken, e.g. by a transformers it does not support
        spec.skip_reason = (f"optimum is installed but cannot be imported ({_message(exc)}); "
                            "reinstall a matching set: pip install 'edgebert[optimum]'")
    else:
        spec.skip_reason = OPTIMUM_MISSING
    return spec


def _optimum_export(source: VariantSpec, folder: Path) -> Path:
    """Optimum's ONNX export of ``source`` in ``folder/optimum-fp32`` (made once; the Optimum rows share it)."""
    from optimum.onnxruntime import ORTModelForSequenceClassification

    exported = Path(folder) / "optimum-fp32"
    if not (exported / "model.onnx").is_file():
        with _quiet():
            ORTModelForSequenceClassification.from_pretrained(source.path, export=True).save_pretrained(exported)
    return exported


def build_optimum_int8(source: VariantSpec, folder: Path, preset: str | None = None,
                       label: str = "optimum-int8") -> VariantSpec:
    """Optimum's export + ORTQuantizer dynamic int8 of ``source``, with AutoQuantizationConfig's
    ``preset`` (default: the one :func:`optimum_preset` picks from the CPU's flags), as the row
    ``baseline/<label>`` in ``folder/<label>``."""
    preset, why = (preset, "chosen by the caller") if preset else optimum_preset()
    name, quantized = f"baseline/{label}", Path(folder) / label
    try:
        from optimum.onnxruntime import ORTQuantizer
        from optimum.onnxruntime.configuration import AutoQuantizationConfig
    except ImportError as exc:
        return _optimum_skip(_onnx_spec(name, label, quantized / "model_quantized.onnx", source, "int8"), exc)
    notes = [f"Optimum ONNX export + ORTQuantizer dynamic int8, AutoQuantizationConfig.{preset}"
             f"(is_static=False, per_channel=False) ({why})"]
    try:
        exported = _optimum_export(source, folder)
        with _quiet():
            qconfig = getattr(AutoQuantizationConfig, preset)(is_static=False, per_channel=False)
            ORTQuantizer.from_pretrained(exported).quantize(qconfig, save_dir=quantized)
        path = next(iter(sorted(quantized.glob("*.onnx"))))
    except Exception as exc:
        return _onnx_spec(name, label, quantized / "model_quantized.onnx", source, "int8",
                          error=f"optimum export / quantization failed: {_message(exc)}", notes=notes)
    spec = _onnx_spec(name, label, path, source, "int8", notes=notes)
    spec.validation = {"optimum_preset": preset, "preset_reason": why}
    return spec


def preset_arguments(qconfig) -> dict[str, Any]:
    """``onnxruntime.quantization.quantize_dynamic`` arguments equal to what ``ORTQuantizer.quantize``
    gives onnxruntime's quantizer for the dynamic ``qconfig`` (an AutoQuantizationConfig preset), plus
    ``DefaultTensorType=FLOAT``, without which the quantizer cannot type the outputs of the fused ops.
    ``MatMulConstBOnly`` is set False as ORTQuantizer leaves it (quantize_dynamic's own default is True)."""
    import onnx

    ops = [getattr(op, "value", op) for op in qconfig.operators_to_quantize]
    return {
        "per_channel": qconfig.per_channel, "reduce_range": qconfig.reduce_range,
        "weight_type": qconfig.weights_dtype, "op_types_to_quantize": ops,
        "nodes_to_quantize": list(qconfig.nodes_to_quantize), "nodes_to_exclude": list(qconfig.nodes_to_exclude),
        "extra_options": {"WeightSymmetric": qconfig.weights_symmetric,
                          "ActivationSymmetric": qconfig.activations_symmetric,
                          "ForceSymmetric": qconfig.activations_symmetric and qconfig.weights_symmetric,
                          "MatMulConstBOnly": False, "DefaultTensorType": onnx.TensorProto.FLOAT},
    }


def build_optimum_o3_int8(source: VariantSpec, folder: Path, preset: str | None = None,
                          label: str = "optimum-o3-int8") -> VariantSpec:
    """Optimum's export, ``ORTOptimizer`` at ``AutoOptimizationConfig.O3()`` (made once in
    ``folder/optimum-o3``), then dynamic int8 at ``preset`` (default: the CPU's) through
    ``quantize_dynamic`` with :func:`preset_arguments`, as the row ``baseline/<label>``."""
    preset, why = (preset, "chosen by the caller") if preset else optimum_preset()
    name, out = f"baseline/{label}", Path(folder) / label / "model_quantized.onnx"
    try:
        from optimum.onnxruntime import ORTOptimizer
        from optimum.onnxruntime.configuration import AutoOptimizationConfig, AutoQuantizationConfig
    except ImportError as exc:
        return _optimum_skip(_onnx_spec(name, label, out, source, "int8"), exc)
    notes = [f"Optimum ONNX export + ORTOptimizer AutoOptimizationConfig.O3() (CPU, no fusion disabled) + "
             f"onnxruntime quantize_dynamic with AutoQuantizationConfig.{preset}(is_static=False, per_channel=False)'s "
             f"settings and DefaultTensorType=FLOAT (ORTQuantizer fails on the fused graph) ({why})"]
    try:
        from onnxruntime.quantization import quantize_dynamic

        exported = _optimum_export(source, folder)
        optimized = Path(folder) / "optimum-o3" / "model_optimized.onnx"
        optimization = AutoOptimizationConfig.O3()
        with _quiet():
            if not optimized.is_file():
                ORTOptimizer.from_pretrained(exported).optimize(optimization_config=optimization,
                                                                save_dir=optimized.parent)
            qconfig = getattr(AutoQuantizationConfig, preset)(is_static=False, per_channel=False)
            arguments = preset_arguments(qconfig)
            out.parent.mkdir(parents=True, exist_ok=True)
            quantize_dynamic(str(optimized), str(out), **arguments)
            fused = ORTOptimizer.get_fused_operators(optimized)
    except Exception as exc:
        return _onnx_spec(name, label, out, source, "int8", notes=notes,
                          error=f"optimum export / O3 optimization / quantization failed: {_message(exc)}")
    spec = _onnx_spec(name, label, out, source, "int8", notes=notes)
    settings = {k: v for k, v in vars(optimization).items() if v is not None}
    extra = dict(arguments["extra_options"], DefaultTensorType="FLOAT")
    spec.validation = {"optimum_preset": preset, "preset_reason": why, "optimization": settings,
                       "fused_operators": {k: int(v) for k, v in fused.items() if v},
                       "quantize_dynamic": dict(arguments, weight_type=str(qconfig.weights_dtype), extra_options=extra)}
    return spec


def build_openvino_int8(source: VariantSpec, folder: Path, train_texts: list[str], *,
                        train_pairs: list[str] | None = None, max_length: int = 128,
                        samples: int = OPENVINO_CALIBRATION, seed: int = 0) -> VariantSpec:
    """``source`` (a Hugging Face classifier folder) converted to OpenVINO IR, quantized by NNCF
    calibrated on up to ``samples`` of ``train_texts`` (a seeded sample, each sentence at its own
    length, as a device runs them) and saved as ``folder/openvino-int8/model.xml``."""
    out = Path(folder) / "openvino-int8" / "model.xml"
    spec = VariantSpec(name="baseline/openvino-int8", kind="openvino", runtime="openvino", path=str(out),
                       tokenizer_dir=source.tokenizer_dir, label_names=source.label_names, precision="int8",
                       role="baseline", baseline="openvino-int8", source=source.path)
    if not (_installed("openvino") and _installed("nncf")):
        spec.skip_reason = OPENVINO_MISSING
        return spec
    if not train_texts:
        spec.skip_reason = "no training sentences to calibrate NNCF on"
        return spec
    try:
        import nncf
        import openvino as ov
        import torch
        from transformers import AutoModelForSequenceClassification

        from edgebert.compress.quantize import calibration_feeds
        from edgebert.export.onnx import onnx_input_names

        with _quiet():
            model = AutoModelForSequenceClassification.from_pretrained(source.path).float().eval()
            tokenizer = load_hf_tokenizer(source.tokenizer_dir)
            names = list(onnx_input_names(model))
            feeds = calibration_feeds(tokenizer, train_texts, names, samples=samples, batch_size=1,
                                      max_length=max_length, seed=seed, pairs=train_pairs)
            with torch.no_grad():
                ov_model = ov.convert_model(model, example_input={k: torch.from_numpy(v) for k, v in feeds[0].items()})
            for port in ov_model.inputs:  # the tracer may name a port '64' beside 'attention_mask': keep the name
                port.get_tensor().set_names({next((n for n in names if n in port.get_names()), port.get_any_name())})
            # both axes dynamic: the bench runs each sentence at its own length
            ov_model.reshape({port.get_any_name(): ov.PartialShape([-1, -1]) for port in ov_model.inputs})
            nncf.set_log_level(logging.ERROR)
            with contextlib.redirect_stdout(io.StringIO()):  # NNCF's progress bars
                quantized = nncf.quantize(ov_model, nncf.Dataset(feeds), model_type=nncf.ModelType.TRANSFORMER,
                                          preset=nncf.QuantizationPreset.MIXED, subset_size=len(feeds))
            out.parent.mkdir(parents=True, exist_ok=True)
            ov.save_model(quantized, str(out))  # compress_to_fp16 (its default): float weights stored fp16
    except Exception as exc:
        spec.error = f"OpenVINO conversion / NNCF quantization failed: {_message(exc)}"
        return spec
    spec.files = [str(out), str(out.with_suffix(".bin"))]
    from edgebert.artifact import library_versions

    versions = library_versions()
    spec.notes = [
        f"openvino.convert_model of the PyTorch model (openvino {versions.get('openvino')}), batch and sequence "
        f"dynamic; nncf.quantize (nncf {versions.get('nncf')}, ModelType.TRANSFORMER, QuantizationPreset.MIXED) "
        f"calibrated on {len(feeds)} training sentences (seed {seed}, each at its own length, at most {max_length} "
        "tokens); openvino.save_model (float weights fp16); run by Core().compile_model on the CPU: "
        "INFERENCE_NUM_THREADS = the bench's threads, NUM_STREAMS 1, PERFORMANCE_HINT LATENCY"]
    spec.validation = {"calibration_samples": len(feeds), "calibration_seed": seed,
                       "nncf": {"model_type": "TRANSFORMER", "preset": "MIXED"}}
    return spec


def build_edgebert_fused_int8(source: VariantSpec, folder: Path, plain_onnx: Path) -> VariantSpec:
    """``plain_onnx`` (baseline 2, edgebert's export of the unpruned model) fused as the ``export-onnx``
    stage does and quantized to dynamic int8 with the ``quantize`` stage's defaults, every quantizable
    node quantized (no accuracy search: no layer kept in float)."""
    name, label = "baseline/edgebert-fused-int8", "edgebert-fused-int8"
    out = Path(folder) / label / "model.onnx"
    try:
        from transformers import AutoConfig

        import inspect

        from edgebert.compress.quantize import quantize_onnx
        from edgebert.export.fuse import FUSABLE_MODEL_TYPES, fuse_onnx, fusion_params
        from edgebert.stages.export_onnx import ExportOnnxConfig
        from edgebert.stages.quantize import QuantizeConfig

        config = AutoConfig.from_pretrained(source.path)
        if config.model_type not in FUSABLE_MODEL_TYPES:
            spec = _onnx_spec(name, label, out, source, "int8")
            spec.skip_reason = (f"onnxruntime's transformer fusion supports model types "
                                f"{', '.join(FUSABLE_MODEL_TYPES)}; this model is '{config.model_type}'")
            return spec
        if not Path(plain_onnx).is_file():
            raise FileNotFoundError(f"no ONNX export to fuse: {plain_onnx} (baseline/onnx-fp32 failed)")
        export_cfg, quant_cfg = ExportOnnxConfig(), QuantizeConfig(mode="int8-dynamic")
        fused = Path(folder) / label / "fused.onnx"
        fusion = fuse_onnx(plain_onnx, fused, opt_level=export_cfg.opt_level, **fusion_params(config))
        settings = set(inspect.signature(quantize_onnx).parameters)
        report = quantize_onnx(fused, out, **{k: v for k, v in quant_cfg.model_dump().items() if k in settings})
    except Exception as exc:
        return _onnx_spec(name, label, out, source, "int8", error=f"fusion / quantization failed: {_message(exc)}")
    spec = _onnx_spec(name, label, out, source, "int8", notes=[
        "edgebert's export of the unpruned model (as baseline/onnx-fp32), fuse_onnx at opt_level "
        f"{export_cfg.opt_level} as the export-onnx stage does, quantize_onnx int8-dynamic with the quantize "
        f"stage's defaults (per_channel={quant_cfg.per_channel}, weight_type={quant_cfg.weight_type}, "
        f"reduce_range={quant_cfg.reduce_range}), every quantizable node quantized: no pruning, no distillation"])
    spec.validation = {"fused_ops": fusion["fused_ops"], "quantized_ops": report["op_counts"],
                       "nodes_float": report["nodes_float"]}
    return spec


def build_baselines(source: VariantSpec, folder: Path, texts: list[str], *, max_length: int = 128,
                    on_step=None, pairs: list[str] | None = None, train_texts: list[str] | None = None,
                    train_pairs: list[str] | None = None) -> list[VariantSpec]:
    """Baselines 2-6 for ``source`` (baseline 1 is ``source`` itself, marked in place). ``texts`` /
    ``pairs`` validate the ONNX export; ``train_texts`` / ``train_pairs`` calibrate the OpenVINO one
    (without them it is skipped)."""
    source.baseline = "pytorch-fp32"
    if source.role == "input":
        source.notes.append("baseline 1: PyTorch eager fp32")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    preset, _why = optimum_preset()

    def step(name: str, what: str) -> None:
        if on_step:
            on_step(name, what)

    step("baseline/onnx-fp32", "export + validate")
    out = [build_onnx_fp32(source, folder, texts, max_length=max_length, pairs=pairs)]
    for label, build in (("optimum-int8", build_optimum_int8), ("optimum-o3-int8", build_optimum_o3_int8)):
        step(f"baseline/{label}", "optimum export + optimize / quantize")
        out.append(build(source, folder))  # the CPU's preset, with why it was chosen
        if avx2_too(preset):
            out.append(build(source, folder, "avx2", label=f"{label}-avx2"))
    step("baseline/openvino-int8", "OpenVINO conversion + NNCF quantization")
    out.append(build_openvino_int8(source, folder, train_texts or [], train_pairs=train_pairs, max_length=max_length))
    step("baseline/edgebert-fused-int8", "fuse + quantize")
    out.append(build_edgebert_fused_int8(source, folder, folder / "onnx-fp32" / "model.onnx"))
    return out


def _p50(row: dict[str, Any]) -> float | None:
    return (row.get("latency") or {}).get("p50") if row.get("status") == "ok" else None


def _accuracy(row: dict[str, Any]) -> float | None:
    return (row.get("accuracy") or {}).get("accuracy") if row.get("status") == "ok" else None


def _interval(slower: dict[str, Any] | None, faster: dict[str, Any]) -> dict[str, Any] | None:
    """p50(slower) / p50(faster) with its paired bootstrap interval, from the rows' (rounds x sentences)
    timings; None where either row lacks them."""
    from edgebert.bench.protocol import bootstrap_ratio

    a = ((slower or {}).get("latency") or {}).get("rounds_ms")
    b = (faster.get("latency") or {}).get("rounds_ms")
    if a is None or b is None:
        return None
    return bootstrap_ratio(np.asarray(a), np.asarray(b))


def _brief_row(row: dict[str, Any], fp32: float | None) -> dict[str, Any]:
    acc = _accuracy(row)
    return {"name": row["name"], "baseline": row.get("baseline"), "p50_ms": _p50(row), "accuracy": acc,
            "drop_points": None if acc is None or fp32 is None else (fp32 - acc) * 100}


def headline(variants: list[dict[str, Any]], budget_points: float = HEADLINE_BUDGET_POINTS) -> dict[str, Any]:
    """The bench's headline from its variant rows (bench.json's ``variants``).

    ``strongest``: the fastest (p50, batch 1) third-party baseline (:data:`THIRD_PARTY`) whose accuracy
    is at most ``budget_points`` below the fp32 model's (the ``pytorch-fp32`` row, else ``onnx-fp32``);
    ``optimum_avx2``: Optimum's unoptimized int8 with the AVX2 preset; ``rows``: every other row (the
    edgebert artifacts and ``edgebert-fused-int8``) with its p50 speed-up against both (their p50 over
    the row's; above 1: the row is faster) and its accuracy drop from fp32 in points. A part that
    cannot be had (no fp32 row measured, no AVX2 Optimum row) is None and ``notes`` say why.
    """
    ok = [v for v in variants if _p50(v) is not None and _accuracy(v) is not None]
    by_name = {v["name"]: v for v in ok}
    by_base: dict[str, dict[str, Any]] = {}
    for v in ok:  # the first row of each (a CUDA bench appends an fp16 copy of the PyTorch row after it)
        if v.get("baseline"):
            by_base.setdefault(v["baseline"], v)
    fp32_row = by_base.get("pytorch-fp32") or by_base.get("onnx-fp32")
    fp32 = _accuracy(fp32_row) if fp32_row else None
    notes = []
    candidates = [_brief_row(v, fp32) for v in ok if v.get("baseline") in THIRD_PARTY]
    for c in candidates:
        c["within_budget"] = None if c["drop_points"] is None else c["drop_points"] <= budget_points + 1e-9
    within = [c for c in candidates if c["within_budget"]]
    strongest = min(within, key=lambda c: c["p50_ms"]) if within else None
    if fp32 is None:  # with one, the fp32 rows themselves are within the budget: a strongest always exists
        notes.append("no fp32 row (pytorch-fp32 or onnx-fp32) was measured: no accuracy to judge the baselines by")
    avx2 = by_base.get("optimum-int8-avx2")
    if avx2 is None and ((by_base.get("optimum-int8") or {}).get("validation") or {}).get("optimum_preset") == "avx2":
        avx2 = by_base["optimum-int8"]
    if avx2 is None:
        notes.append("Optimum's unoptimized AVX2 int8 was not measured (optimum missing, failed, or not an x86 CPU)")
    anchor = _brief_row(avx2, fp32) if avx2 else None
    rows = []
    for v in ok:
        if v.get("baseline") in THIRD_PARTY:
            continue
        row = _brief_row(v, fp32)
        row["speedup_vs_strongest"] = strongest["p50_ms"] / row["p50_ms"] if strongest else None
        row["speedup_vs_optimum_avx2"] = anchor["p50_ms"] / row["p50_ms"] if anchor else None
        # paired bootstrap intervals over rounds and sentences (edgebert.bench.protocol: Uncertainty)
        row["speedup_vs_strongest_interval"] = _interval(by_name.get(strongest["name"]) if strongest else None, v)
        row["speedup_vs_optimum_avx2_interval"] = _interval(avx2, v)
        rows.append(row)
    return {"budget_points": budget_points, "fp32": _brief_row(fp32_row, fp32) if fp32_row else None,
            "strongest": strongest, "optimum_avx2": anchor, "candidates": candidates, "rows": rows, "notes": notes}
