"""The baselines of ``bench --baselines`` (edgebert.bench.baselines): each one built and scored on the
tiny classifier, the rows built per CPU preset, and the headline (the strongest baseline)."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest


def _needs(*modules: str) -> None:
    """Skip the test, saying why, unless every module imports (imported here, not at collection: nncf and
    optimum take seconds to import)."""
    for module in modules:
        try:
            importlib.import_module(module)
        except ImportError as exc:  # absent, or installed beside a library it does not support
            extra = "optimum" if module.startswith("optimum") else "openvino"
            pytest.skip(f"{module} not usable here ({exc}); pip install 'edgebert[{extra}]'")


def _scored(spec, data_dir: Path, threads: int = 1) -> tuple[float, np.ndarray]:
    """(accuracy on the tiny test split, logits) of ``spec`` run by its own runtime, one sentence at a time."""
    from edgebert.bench.variants import encode_numpy, load_hf_tokenizer, open_runner
    from edgebert.data import load_dataset

    split = load_dataset(str(data_dir)).with_labels(spec.label_names).split("test")
    tokenizer = load_hf_tokenizer(spec.tokenizer_dir)
    runner = open_runner(spec, threads)
    try:
        logits = np.concatenate([runner.logits(runner(runner.prepare(encode_numpy(tokenizer, [t], truncation=True,
                                                                                  max_length=32))))
                                 for t in split.texts])
    finally:
        runner.close()
    return float(np.mean(logits.argmax(-1) == np.asarray(split.labels))), logits


@pytest.fixture(scope="module")
def source(tiny_classifier_dir):
    from edgebert.bench.variants import discover

    return discover(str(tiny_classifier_dir))[0]


@pytest.fixture(scope="module")
def reference_logits(source, tiny_sentiment_dir):
    return _scored(source, tiny_sentiment_dir)[1]


def test_edgebert_fused_int8_builds_and_scores(source, tiny_sentiment_dir, reference_logits, tmp_path):
    from edgebert.bench.baselines import build_edgebert_fused_int8, build_onnx_fp32

    fp32 = build_onnx_fp32(source, tmp_path, ["i love this movie"])
    spec = build_edgebert_fused_int8(source, tmp_path, Path(fp32.path))
    assert spec.error is None and spec.skip_reason is None, spec.error
    assert spec.baseline == "edgebert-fused-int8" and spec.precision == "int8" and spec.runtime == "onnxruntime"
    assert spec.validation["fused_ops"].get("Attention") == 2  # both layers fused: the unpruned model's fusion
    assert spec.validation["quantized_ops"].get("QAttention") == 2 and spec.validation["nodes_float"] == []
    assert any("fuse_onnx" in n and "quantize_onnx int8-dynamic" in n for n in spec.notes)
    accuracy, logits = _scored(spec, tiny_sentiment_dir)
    assert accuracy >= 0.9
    assert np.mean(logits.argmax(-1) == reference_logits.argmax(-1)) >= 0.9


def test_optimum_o3_int8_builds_and_scores(source, tiny_sentiment_dir, reference_logits, tmp_path):
    _needs("optimum.onnxruntime")
    from edgebert.bench.baselines import build_optimum_o3_int8

    spec = build_optimum_o3_int8(source, tmp_path, preset="avx2")
    assert spec.error is None and spec.skip_reason is None, spec.error
    assert spec.name == "baseline/optimum-o3-int8" and Path(spec.path).is_file()
    v = spec.validation
    assert v["optimum_preset"] == "avx2" and v["optimization"]["enable_gelu_approximation"] is True
    assert v["fused_operators"].get("Attention", 0) >= 1  # O3 fused the attention blocks
    assert v["quantize_dynamic"]["extra_options"]["DefaultTensorType"] == "FLOAT"
    import onnx

    ops = {n.op_type for n in onnx.load(spec.path).graph.node}
    assert "QAttention" in ops and "Attention" not in ops  # the fused graph is the one quantized
    accuracy, logits = _scored(spec, tiny_sentiment_dir)
    assert accuracy >= 0.9
    assert np.mean(logits.argmax(-1) == reference_logits.argmax(-1)) >= 0.9
    # the AVX-512 row of the same graph: the optimized graph is made once and shared
    vnni = build_optimum_o3_int8(source, tmp_path, preset="avx512_vnni", label="optimum-o3-int8-vnni")
    assert vnni.error is None and vnni.validation["quantize_dynamic"]["weight_type"] == "QInt8"


def test_preset_arguments_are_the_ones_ortquantizer_uses():
    _needs("optimum.onnxruntime")
    import onnx
    from onnxruntime.quantization import QuantType
    from onnxruntime.quantization.registry import IntegerOpsRegistry
    from optimum.onnxruntime.configuration import AutoQuantizationConfig

    from edgebert.bench.baselines import preset_arguments

    avx2 = preset_arguments(AutoQuantizationConfig.avx2(is_static=False, per_channel=False))
    vnni = preset_arguments(AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False))
    assert avx2["weight_type"] == QuantType.QUInt8 and vnni["weight_type"] == QuantType.QInt8
    for args in (avx2, vnni):
        assert args["per_channel"] is False and args["reduce_range"] is False
        assert set(args["op_types_to_quantize"]) == set(IntegerOpsRegistry)
        assert args["extra_options"]["DefaultTensorType"] == onnx.TensorProto.FLOAT
        assert args["extra_options"]["MatMulConstBOnly"] is False and args["extra_options"]["WeightSymmetric"] is True


def test_openvino_int8_builds_scores_and_runs_without_torch(source, tiny_sentiment_dir, reference_logits, tmp_path):
    _needs("openvino", "nncf")
    from edgebert.bench import protocol
    from edgebert.bench.baselines import build_openvino_int8
    from edgebert.data import load_dataset

    train = load_dataset(str(tiny_sentiment_dir)).split("train")
    spec = build_openvino_int8(source, tmp_path, train.texts, samples=16, max_length=32)
    assert spec.error is None and spec.skip_reason is None, spec.error
    assert spec.runtime == "openvino" and spec.precision == "int8" and spec.baseline == "openvino-int8"
    assert all(Path(f).is_file() for f in spec.files) and spec.files[0].endswith("model.xml")
    assert spec.validation["calibration_samples"] == 16 and "nncf.quantize" in spec.notes[0]
    import openvino as ov

    ir = ov.Core().read_model(spec.path)
    assert "FakeQuantize" in {op.get_type_name() for op in ir.get_ops()}  # NNCF quantized it
    # the tracer names the mask port '64' as well: the runner feeds ports by name, so the IR keeps the real one
    assert [p.get_any_name() for p in ir.inputs] == ["input_ids", "attention_mask", "token_type_ids"]
    accuracy, logits = _scored(spec, tiny_sentiment_dir, threads=2)
    assert accuracy >= 0.9
    assert np.mean(logits.argmax(-1) == reference_logits.argmax(-1)) >= 0.9
    assert any(n.startswith("OpenVINO CPU plugin inference precision (float parts): ") and "<" not in n
               for n in spec.notes)
    memory = protocol.measure_memory({"variant": spec.to_json(), "threads": 1, "texts": train.texts[:3],
                                      "runs": 3, "max_length": 32})
    assert "error" not in memory, memory
    assert memory["torch_imported"] is False and "openvino" in memory["runtime_modules"]


def test_avx2_rows_where_the_cpu_preset_is_another_x86_one():
    from edgebert.bench.baselines import baseline_names

    vnni = baseline_names("avx512_vnni")
    assert "baseline/optimum-int8-avx2" in vnni and "baseline/optimum-o3-int8-avx2" in vnni
    for preset in ("avx2", "arm64"):
        names = baseline_names(preset)
        assert not any(n.endswith("-avx2") for n in names)
        assert {"baseline/optimum-o3-int8", "baseline/openvino-int8", "baseline/edgebert-fused-int8"} <= set(names)


def _row(name, baseline, accuracy, p50, *, status="ok", role="baseline", **extra):
    return {"name": name, "baseline": baseline, "role": role, "status": status,
            "accuracy": {"accuracy": accuracy} if accuracy is not None else None,
            "latency": {"p50": p50} if p50 is not None else None, **extra}


def _synthetic():
    return [
        _row("ft", "pytorch-fp32", 0.900, 20.0, role="input"),
        _row("baseline/onnx-fp32", "onnx-fp32", 0.900, 8.0),
        _row("baseline/optimum-int8", "optimum-int8", 0.895, 4.0,
             validation={"optimum_preset": "avx512_vnni"}),
        _row("baseline/optimum-int8-avx2", "optimum-int8-avx2", 0.894, 5.0),
        _row("baseline/optimum-o3-int8", "optimum-o3-int8", 0.890, 3.0),  # exactly 1 point: within
        _row("baseline/optimum-o3-int8-avx2", "optimum-o3-int8-avx2", 0.893, 2.9, status="failed"),
        _row("baseline/openvino-int8", "openvino-int8", 0.880, 2.0),  # fastest, but 2 points below
        _row("baseline/edgebert-fused-int8", "edgebert-fused-int8", 0.897, 2.5),
        _row("art/model.onnx", None, 0.896, 1.0, role="input"),
    ]


def test_headline_picks_the_fastest_baseline_within_one_point():
    from edgebert.bench.baselines import headline

    h = headline(_synthetic())
    assert h["fp32"]["name"] == "ft" and h["fp32"]["accuracy"] == 0.900
    assert h["strongest"]["name"] == "baseline/optimum-o3-int8" and h["strongest"]["p50_ms"] == 3.0
    within = {c["name"]: c["within_budget"] for c in h["candidates"]}
    assert within["baseline/openvino-int8"] is False and within["baseline/optimum-o3-int8"] is True
    assert "baseline/optimum-o3-int8-avx2" not in within  # failed: not measured
    assert h["optimum_avx2"]["name"] == "baseline/optimum-int8-avx2"
    rows = {r["name"]: r for r in h["rows"]}
    assert set(rows) == {"baseline/edgebert-fused-int8", "art/model.onnx"}
    art = rows["art/model.onnx"]
    assert art["speedup_vs_strongest"] == pytest.approx(3.0) and art["speedup_vs_optimum_avx2"] == pytest.approx(5.0)
    assert art["drop_points"] == pytest.approx(0.4)
    assert rows["baseline/edgebert-fused-int8"]["speedup_vs_strongest"] == pytest.approx(1.2)
    assert h["notes"] == []


def test_headline_anchor_on_an_avx2_cpu_a_tight_budget_and_no_fp32_row():
    from edgebert.bench.baselines import headline

    variants = [v for v in _synthetic() if v["baseline"] != "optimum-int8-avx2"]
    variants[2]["validation"] = {"optimum_preset": "avx2"}  # on an AVX2 CPU optimum-int8 is the AVX2 anchor
    assert headline(variants)["optimum_avx2"]["name"] == "baseline/optimum-int8"
    tight = headline(variants, budget_points=0.0)
    assert tight["strongest"]["name"] == "baseline/onnx-fp32"  # only the fp32 rows are within 0 points
    no_fp32 = headline([v for v in variants if v["baseline"] not in ("pytorch-fp32", "onnx-fp32")])
    assert no_fp32["strongest"] is None and no_fp32["fp32"] is None
    assert all(r["speedup_vs_strongest"] is None and r["drop_points"] is None for r in no_fp32["rows"])
    assert no_fp32["rows"][-1]["speedup_vs_optimum_avx2"] == pytest.approx(4.0)
    assert any("no fp32 row" in n for n in no_fp32["notes"])


def test_bench_md_shows_the_headline():
    from edgebert.bench.baselines import headline
    from edgebert.bench.report import headline_markdown

    text = headline_markdown(headline(_synthetic()))
    assert "Strongest baseline" in text and "baseline/optimum-o3-int8" in text
    line = next(x for x in text.splitlines() if x.startswith("| art/model.onnx"))
    assert "3.00x" in line and "5.00x" in line


def test_headline_intervals_from_the_rows_timings():
    """Rows that carry their (rounds x sentences) timings get a paired bootstrap interval around each speed-up;
    the interval holds the point ratio and narrows with less noise."""
    import numpy as np

    from edgebert.bench.baselines import headline
    from edgebert.bench.report import headline_markdown

    rng = np.random.default_rng(0)
    lengths = rng.uniform(0.5, 1.5, size=100)  # the sentences' own spread, shared by every variant

    def timings(p50: float, noise: float) -> list[list[float]]:
        return (p50 * lengths[None, :] * rng.lognormal(0, noise, size=(3, 100))).tolist()

    variants = _synthetic()
    for v in variants:
        if v["status"] == "ok":
            v["latency"]["rounds_ms"] = timings(v["latency"]["p50"], 0.05)
    h = headline(variants)
    art = next(r for r in h["rows"] if r["name"] == "art/model.onnx")
    iv = art["speedup_vs_strongest_interval"]
    assert iv["low"] < iv["ratio"] < iv["high"] and iv["rounds"] == 3 and iv["sentences"] == 100
    assert 2.7 < iv["low"] and iv["high"] < 3.3  # the true ratio is 3.0
    assert "In brackets" in headline_markdown(h) and f"({iv['low']:.2f}-{iv['high']:.2f})" in headline_markdown(h)
    for v in variants:
        if v["status"] == "ok":
            v["latency"]["rounds_ms"] = timings(v["latency"]["p50"], 0.3)
    noisy = next(r for r in headline(variants)["rows"] if r["name"] == "art/model.onnx")["speedup_vs_strongest_interval"]
    assert noisy["high"] - noisy["low"] > iv["high"] - iv["low"]
    # rows without timings (older bench.json files) get no interval
    for v in variants:
        (v.get("latency") or {}).pop("rounds_ms", None)
    assert next(r for r in headline(variants)["rows"] if r["name"] == "art/model.onnx")[
        "speedup_vs_strongest_interval"] is None
