"""torch.compile for the PyTorch fallback: measured, decided, recorded in torch_compile.json, applied by bench."""

from __future__ import annotations

import json

import pytest
import yaml

from edgebert.export.torch_compile import COMPILE_FILE, compile_choice, decide, read_settings
from edgebert.pipeline import compress

MEASURED = {"device": "GPU X", "device_type": "cuda", "dtype": "float16", "eager_p50_ms": 6.0,
            "compiled_p50_ms": 4.0, "speedup": 1.5, "max_abs_logit_diff": 1e-3, "label_agreement": 1.0}


def _recipe(tmp_path, **export):
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump({"name": "r", "stages": [{"kind": "export-pytorch", **export}]}), encoding="utf-8")
    return path


@pytest.mark.parametrize(("measured", "policy", "error", "enabled", "reason"), [
    (MEASURED, "auto", None, True, "1.50x faster"),
    ({**MEASURED, "speedup": 1.05}, "auto", None, False, "eager is kept"),
    ({**MEASURED, "speedup": 0.7}, "on", None, True, "compile: on"),
    ({**MEASURED, "max_abs_logit_diff": 0.5}, "auto", None, False, "differ from eager"),
    ({**MEASURED, "label_agreement": 0.9}, "on", None, False, "label agreement 0.900"),
    (None, "auto", "BackendCompilerFailed: no compiler", False, "stays eager: BackendCompilerFailed"),
    (None, "off", None, False, "off in the recipe"),
    ({**MEASURED, "max_abs_logit_diff": float("nan")}, "on", None, False, "differ from eager"),
])
def test_decision_follows_the_measurement(measured, policy, error, enabled, reason):
    entry = decide(measured, policy=policy, min_speedup=1.1, max_logit_diff=0.05, error=error)
    assert entry["enabled"] is enabled and reason in entry["reason"]
    assert entry["measured"] == measured and entry["dynamic"] is True
    assert (compile_choice({"cuda": entry}, "cuda", "float16")[0] is not None) is enabled
    assert compile_choice({"cuda": entry}, "cpu", "float16") == (None, None)  # a GPU measurement says nothing about a CPU


@pytest.fixture
def no_cuda(monkeypatch):
    """These tests pin the CPU path: on a GPU machine the stage would measure on CUDA instead."""
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_auto_on_a_cpu_host_records_that_nothing_was_measured(tiny_classifier_dir, tiny_sentiment_dir, tmp_path,
                                                              no_cuda):
    out = tmp_path / "art"
    compress(str(tiny_classifier_dir), "server-gpu", data=str(tiny_sentiment_dir), out=out,
             recipe=_recipe(tmp_path, dtype="float16"), progress=False)
    settings = read_settings(out / "model")
    assert set(settings) == {"cpu"} and settings["cpu"]["enabled"] is False
    assert "no CUDA device" in settings["cpu"]["reason"] and settings["cpu"]["measured"] is None
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["stages"][0]["metrics"]["torch_compile"] == settings
    assert f"model/{COMPILE_FILE}" in manifest["deploy"]["files"]


def test_resuming_on_a_gpu_host_redoes_the_decision(tiny_classifier_dir, tiny_sentiment_dir, tmp_path, no_cuda,
                                                    monkeypatch):
    """The decision depends on the machine: a CPU host's "not measured" is not reused on a GPU host."""
    out, recipe = tmp_path / "art", _recipe(tmp_path)
    compress(str(tiny_classifier_dir), "server-gpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe,
             progress=False)
    again = compress(str(tiny_classifier_dir), "server-gpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe,
                     progress=False)
    assert again.ran == []
    from edgebert.stages import export_pytorch as export

    # As on a GPU host; there is no real GPU, so measuring there fails, and the failure is the recorded reason.
    monkeypatch.setattr(export, "_compile_device", lambda cfg: "cuda")
    gpu = compress(str(tiny_classifier_dir), "server-gpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe,
                   progress=False)
    assert gpu.ran == ["01-export-pytorch"]
    entry = read_settings(out / "model")["cuda"]
    assert entry["enabled"] is False and "failed" in entry["reason"]


def test_off_writes_no_decision(tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    out = tmp_path / "art"
    compress(str(tiny_classifier_dir), "server-gpu", data=str(tiny_sentiment_dir), out=out,
             recipe=_recipe(tmp_path, compile="off"), progress=False)
    assert read_settings(out / "model") is None


def test_compile_on_measures_and_bench_runs_it_compiled(tiny_classifier_dir, tiny_sentiment_dir, tmp_path, no_cuda):
    """Real torch.compile (inductor, CPU): the stage times eager vs compiled, checks the logits, and
    bench loads the checkpoint compiled, with the same answers as the eager checkpoint."""
    from edgebert.bench import bench

    out = tmp_path / "art"
    compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out,
             recipe=_recipe(tmp_path, compile="on", compile_min_speedup=1.0, compile_samples=4), progress=False)
    entry = read_settings(out / "model")["cpu"]
    if not entry["enabled"] and "failed" in entry["reason"]:
        pytest.skip(f"torch.compile does not work on this machine: {entry['reason']}")
    measured = entry["measured"]
    assert entry["enabled"] is True, entry["reason"]
    assert measured["torch_threads"] >= 1
    assert measured["dtype"] == "float32" and measured["texts"] == 4 and measured["label_agreement"] == 1.0
    assert measured["max_abs_logit_diff"] < 1e-3 and measured["eager_p50_ms"] > 0 and measured["compiled_p50_ms"] > 0
    assert measured["speedup"] == pytest.approx(measured["eager_p50_ms"] / measured["compiled_p50_ms"], rel=1e-3)

    bench([str(tiny_classifier_dir), str(out)], str(tiny_sentiment_dir), split="dev", out=tmp_path / "b", rounds=1,
          warmup=1, latency_samples=3, memory=False, progress=False, device="cpu")
    variants = {v["name"]: v for v in json.loads((tmp_path / "b" / "bench.json").read_text())["variants"]}
    compiled = next(v for n, v in variants.items() if n.startswith("art/"))
    eager = next(v for n, v in variants.items() if not n.startswith("art/"))
    assert compiled["status"] == "ok" and any(n.startswith("torch.compile") for n in compiled["notes"])
    assert not any("torch.compile" in n for n in eager["notes"])
    assert compiled["accuracy"]["agreement"] == 1.0


class _Broken:
    """What torch.compile's lazy compilation looks like when it fails on a host: the call raises."""

    armed = True  # False: behaves as the model until armed

    def __init__(self, model):
        self.model = model

    def __call__(self, **inputs):
        if type(self).armed:
            from torch._dynamo.exc import BackendCompilerFailed

            def inductor():
                pass

            raise BackendCompilerFailed(inductor, OSError("no C++ compiler found"), None)
        return self.model(**inputs)


def _compiled_folder(tiny_classifier_dir, tmp_path):
    """A copy of the tiny checkpoint whose torch_compile.json enables compiling on CPUs."""
    import shutil

    folder = tmp_path / "compiled"
    shutil.copytree(tiny_classifier_dir, folder)
    (folder / COMPILE_FILE).write_text(json.dumps({"cpu": {
        "enabled": True, "mode": "default", "reason": "1.25x faster",
        "measured": {**MEASURED, "device_type": "cpu", "dtype": "float32"}}}), encoding="utf-8")
    return folder


def _bench_variants(tiny_classifier_dir, folder, data, out, **options):
    from edgebert.bench import bench

    bench([str(tiny_classifier_dir), str(folder)], str(data), split="dev", out=out, warmup=1, latency_samples=3,
          memory=False, progress=False, device="cpu", **options)
    variants = json.loads((out / "bench.json").read_text())["variants"]
    return (next(v for v in variants if v["name"].startswith("compiled")),
            next(v for v in variants if not v["name"].startswith("compiled")))


def test_bench_falls_back_to_eager_where_compiling_fails(tiny_classifier_dir, tiny_sentiment_dir, tmp_path,
                                                        monkeypatch, no_cuda):
    """A checkpoint whose decision enables torch.compile, benchmarked on a host where compiling fails
    (no C++ compiler / Triton there): the variant runs eager, with eager's answers, and says why."""
    import edgebert.export.torch_compile as tc

    monkeypatch.setattr(_Broken, "armed", True)
    monkeypatch.setattr(tc, "compile_model", lambda model, mode="default": _Broken(model))
    fell_back, _ = _bench_variants(tiny_classifier_dir, _compiled_folder(tiny_classifier_dir, tmp_path),
                                   tiny_sentiment_dir, tmp_path / "b", rounds=1)
    assert fell_back["status"] == "ok"
    assert any(n.startswith("torch.compile failed on this host at call 1 (OSError: no C++ compiler found)")
               and "measured eager from that call on" in n for n in fell_back["notes"]), fell_back["notes"]
    assert not any(n.startswith("torch.compile (mode") for n in fell_back["notes"])  # it did not run compiled
    assert fell_back["accuracy"]["agreement"] == 1.0 and fell_back["latency"]["p50"] > 0


def test_a_fallback_while_timing_restarts_the_timing_eager(tiny_classifier_dir, tiny_sentiment_dir, tmp_path,
                                                          monkeypatch, no_cuda):
    """Compiled through accuracy and warm-up, failing in the first timed call: the samples timed so far
    are dropped and the variant is timed again, eager, so no latency mixes the two."""
    import edgebert.bench.protocol as protocol
    import edgebert.export.torch_compile as tc

    monkeypatch.setattr(_Broken, "armed", False)
    monkeypatch.setattr(tc, "compile_model", lambda model, mode="default": _Broken(model))
    time_calls = protocol.time_calls

    def arming(runner, inputs):
        _Broken.armed = True  # the next compiled call fails
        return time_calls(runner, inputs)

    monkeypatch.setattr(protocol, "time_calls", arming)
    fell_back, plain = _bench_variants(tiny_classifier_dir, _compiled_folder(tiny_classifier_dir, tmp_path),
                                       tiny_sentiment_dir, tmp_path / "b", rounds=2)
    assert fell_back["status"] == "ok"
    assert any(n.startswith("timing restarted eager in round 1 of 2") for n in fell_back["notes"]), fell_back["notes"]
    assert fell_back["latency"]["n"] == plain["latency"]["n"] == 2 * 3  # one eager round 1 and round 2 each


def test_the_memory_process_reports_its_own_fallback(tiny_classifier_dir, tmp_path, monkeypatch, no_cuda):
    import edgebert.export.torch_compile as tc
    from edgebert.bench import worker
    from edgebert.bench.variants import VariantSpec

    monkeypatch.setattr(_Broken, "armed", True)
    monkeypatch.setattr(tc, "compile_model", lambda model, mode="default": _Broken(model))
    spec = VariantSpec(name="m", path=str(tiny_classifier_dir), kind="hf", runtime="pytorch",
                       tokenizer_dir=str(tiny_classifier_dir), label_names=None, device="cpu", torch_compile="default")
    result = worker.measure({"variant": spec.to_json(), "threads": 1, "texts": ["a short sentence"], "runs": 2})
    assert result["torch_compile_fallback"].startswith("torch.compile failed on this host at call 1")
    assert result["first_call_s"] > 0


def test_an_error_eager_also_raises_is_eager_s_and_changes_nothing(tiny_classifier_dir, monkeypatch):
    import torch

    import edgebert.export.torch_compile as tc
    from edgebert.bench.variants import PytorchRunner, VariantSpec

    monkeypatch.setattr(tc, "compile_model", lambda model, mode="default": model)  # "compiled" = eager here
    spec = VariantSpec(name="m", path=str(tiny_classifier_dir), kind="hf", runtime="pytorch", tokenizer_dir=None,
                       label_names=None, precision="fp32", device="cpu", torch_compile="default",
                       notes=["torch.compile (mode default, dynamic shapes): 1.25x faster"],
                       compile_note="torch.compile (mode default, dynamic shapes): 1.25x faster")
    runner = PytorchRunner(spec)
    bad = {"input_ids": torch.full((1, 4), 10**9, dtype=torch.long)}  # ids past the vocabulary
    with pytest.raises(IndexError):
        runner(bad)
    assert runner.eager is not None and runner.fell_back_at is None  # still compiled: not a compile failure
    assert spec.torch_compile == "default" and spec.notes == ["torch.compile (mode default, dynamic shapes): 1.25x faster"]


def test_unreadable_decision_file_is_a_clear_error(tmp_path):
    from edgebert.errors import ModelLoadError

    (tmp_path / COMPILE_FILE).write_text("{not json", encoding="utf-8")
    with pytest.raises(ModelLoadError, match="Delete it to run the checkpoint eager"):
        read_settings(tmp_path)
