"""The bench protocol's statistics, schedule and settings, the Pareto front, and the bench.json
schema, on known numbers (fast; no models)."""

from __future__ import annotations

import copy
import json

import numpy as np
import pytest

from edgebert.bench import protocol
from edgebert.bench.report import markdown_table, pareto_front, variant_rows
from edgebert.bench.schema import SCHEMA_VERSION, load_results, validate_results
from edgebert.errors import ConfigError


def test_summarize_known_numbers():
    s = protocol.summarize(list(range(1, 101)))  # 1..100 ms
    assert s["n"] == 100
    assert s["min"] == 1 and s["max"] == 100
    assert s["mean"] == pytest.approx(50.5)
    assert s["p50"] == pytest.approx(50.5)  # linear interpolation
    assert s["p10"] == pytest.approx(10.9)
    assert s["p25"] == pytest.approx(25.75)
    assert s["p75"] == pytest.approx(75.25)
    assert s["p90"] == pytest.approx(90.1)
    assert s["p99"] == pytest.approx(99.01)
    assert s["iqr"] == pytest.approx(49.5)
    assert s["std"] == pytest.approx(np.std(np.arange(1, 101), ddof=1))


def test_summarize_small_and_empty():
    assert protocol.summarize([]) == {"n": 0}
    one = protocol.summarize([4.0])
    assert one["p50"] == one["p99"] == one["min"] == 4.0 and one["std"] == 0.0 and one["iqr"] == 0.0
    s = protocol.summarize([1.0, 2.0, 3.0, 4.0])
    assert s["p50"] == pytest.approx(2.5) and s["iqr"] == pytest.approx(1.5)


def test_summarize_ns_converts_to_ms():
    s = protocol.summarize_ns([1_000_000, 2_000_000, 3_000_000])
    assert s["p50"] == pytest.approx(2.0) and s["max"] == pytest.approx(3.0)


def test_throughput_summary():
    t = protocol.throughput_summary([100.0, 200.0, 300.0], batch=8, samples=64)
    assert t["mean"] == pytest.approx(200.0) and t["min"] == 100.0 and t["max"] == 300.0
    assert t["std"] == pytest.approx(100.0) and t["rounds"] == 3 and t["batch"] == 8


def test_round_order_rotates_the_first_variant():
    names = ["a", "b", "c"]
    assert [protocol.round_order(names, k) for k in range(4)] == [
        ["a", "b", "c"], ["b", "c", "a"], ["c", "a", "b"], ["a", "b", "c"]]
    assert protocol.round_order([], 3) == []


def test_time_calls_and_warm_up_count_calls():
    calls = []
    protocol.warm_up(calls.append, [1, 2], 5)
    assert calls == [1, 2, 1, 2, 1]
    times = protocol.time_calls(calls.append, ["x", "y"])
    assert len(times) == 2 and all(isinstance(t, int) and t >= 0 for t in times)


def test_pareto_front():
    lat = [1.0, 2.0, 3.0, 1.5, 4.0, 2.0]
    acc = [0.80, 0.90, 0.95, 0.70, 0.95, 0.85]
    # (1.5, .70) is beaten by (1, .80); (4, .95) by (3, .95); (2, .85) by (2, .90)
    assert pareto_front(lat, acc) == [0, 1, 2]
    assert pareto_front([5.0], [0.5]) == [0]
    assert pareto_front([1.0, 1.0], [0.9, 0.9]) == [0, 1]  # ties dominate nothing


def test_threads_and_ort_options():
    assert 1 <= protocol.physical_cores() <= protocol.available_cpus()
    assert protocol.default_threads() == protocol.physical_cores()
    options = protocol.ort_session_options(3)
    assert options.intra_op_num_threads == 3 and options.inter_op_num_threads == 1
    assert options.get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert options.get_session_config_entry("session.inter_op.allow_spinning") == "0"
    settings = protocol.protocol_settings(threads=3, rounds=2, warmup=1, latency_samples=5, batch=4,
                                          seq_len=None, max_length=64, device="cpu")
    assert settings["isolation"] == "in-process, interleaved, ORT spinning off"


def test_environment_block():
    env = protocol.environment(2)
    assert env["threads"] == 2 and env["physical_cores"] >= 1
    assert set(protocol.FLAGS_OF_INTEREST) == set(env["cpu_flags"])
    assert env["libraries"]["onnxruntime"] and env["device_label"].startswith(env["hostname"])
    assert "jetson_power_mode" in env


def test_optimum_preset_from_flags():
    from edgebert.bench.baselines import optimum_preset

    assert optimum_preset(["avx2", "avx512f", "avx512_vnni"], "x86_64")[0] == "avx512_vnni"
    assert optimum_preset(["avx2", "avx512f"], "x86_64")[0] == "avx512"
    assert optimum_preset(["avx2"], "x86_64")[0] == "avx2"
    assert optimum_preset(["fp", "asimd"], "aarch64")[0] == "arm64"


# -- bench.json schema ------------------------------------------------------------------------

def _variant(name, **over):
    v = {"name": name, "role": "input", "baseline": None, "kind": "onnx", "runtime": "onnxruntime",
         "precision": "fp32", "device": "cpu", "path": f"/m/{name}.onnx", "status": "ok", "error": None,
         "size_bytes": 2_000_000, "load_s": 0.05,
         "accuracy": {"n": 10, "accuracy": 0.9, "macro_f1": 0.88, "macro_precision": 0.9,
                      "macro_recall": 0.87, "agreement": 1.0},
         "latency": {**protocol.summarize([1.0, 2.0, 3.0]), "ratio_vs_reference": 1.0},
         "latency_fixed": None, "throughput": protocol.throughput_summary([50.0, 60.0], batch=4, samples=8),
         "memory": {"peak_rss_mb": 80.0, "rss_runtime_mb": 50.0, "increase_mb": 30.0},
         "validation": None}
    v.update(over)
    return v


def minimal_results(host="host-a", cpu="CPU A"):
    env = {"hostname": host, "cpu": cpu, "threads": 2, "libraries": {}, "gpu": None}
    env["device_label"] = protocol.device_label(env)
    return {
        "schema_version": SCHEMA_VERSION, "tool": "edgebert bench", "created": "2026-01-01T00:00:00+00:00",
        "command": "edgebert bench a.onnx", "out": "x",
        "data": {"name": "tiny", "split": "test", "rows": 10, "label_names": ["neg", "pos"]},
        "protocol": protocol.protocol_settings(threads=2, rounds=2, warmup=1, latency_samples=3, batch=4,
                                               seq_len=None, max_length=64, device="cpu"),
        "environment": env, "reference": "a",
        "variants": [_variant("a"), _variant("b", status="failed", error="load: broken", accuracy=None,
                                             latency=None, throughput=None, memory=None)],
    }


def test_schema_round_trip(tmp_path):
    from edgebert.artifact import write_json

    data = minimal_results()
    write_json(tmp_path / "bench.json", data)
    back = load_results(tmp_path)  # a folder holding bench.json works as well as the file
    assert back == json.loads(json.dumps(data))
    assert back["schema_version"] == 1
    assert load_results(tmp_path / "bench.json")["variants"][1]["status"] == "failed"


def test_schema_errors_name_the_problems(tmp_path):
    bad = copy.deepcopy(minimal_results())
    del bad["environment"]
    bad["schema_version"] = 99
    del bad["variants"][0]["latency"]
    bad["variants"][1]["status"] = "weird"
    with pytest.raises(ConfigError) as e:
        validate_results(bad)
    msg = str(e.value)
    for needle in ("schema_version is 99", "'environment'", "'latency'", "'weird'"):
        assert needle in msg
    with pytest.raises(ConfigError, match="neither a bench.json"):
        load_results(tmp_path / "missing")
    (tmp_path / "bench.json").write_text("{not json")
    with pytest.raises(ConfigError, match="Cannot read"):
        load_results(tmp_path)


def test_markdown_table_shows_spread_and_failures():
    rows = variant_rows(minimal_results())
    table = markdown_table(rows)
    assert "| a | onnxruntime | fp32 | 0.9000 |" in table
    assert "2.00 [1.20–2.80]" in table  # p50 [p10–p90]
    assert "b (failed)" in table and "load: broken" in table


def test_rounds_matrix_bootstrap_and_spread():
    import numpy as np

    from edgebert.bench.protocol import bootstrap_ratio, measurement_spread, rounds_matrix

    assert rounds_matrix([1_000_000] * 6, 3, 2).shape == (3, 2)
    assert rounds_matrix([1_000_000] * 5, 3, 2) is None  # a restarted variant: no aligned matrix
    a = np.array([[2.0, 4.0, 6.0], [2.0, 4.0, 6.0]])
    b = a / 2
    exact = bootstrap_ratio(a, b)
    assert exact["ratio"] == exact["low"] == exact["high"] == 2.0  # a constant ratio has no spread
    assert bootstrap_ratio(a, b[:, :2]) is None
    spread = measurement_spread(np.array([[1.0, 2.0, 4.0], [1.1, 2.2, 4.4]]))
    assert spread["within_sentence"] == pytest.approx(0.1 / 1.05, rel=1e-6)
    assert spread["between_sentences"] == pytest.approx((3.15 - 1.575) / 2.1)  # IQR / p50 of the sentence medians
