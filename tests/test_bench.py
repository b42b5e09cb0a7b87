"""edgebert bench / report end to end on a tiny fine-tuned classifier (fast, offline, no timing
assertions: only that every figure is produced, consistent and written)."""

from __future__ import annotations

import csv
import json
import shutil
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from conftest import assert_clean_error

from edgebert.cli import main

# Quick protocol settings for every run in this file.
QUICK = ["--rounds", "2", "--warmup", "1", "--latency-samples", "6", "--batch", "8", "--threads", "1", "--quiet"]


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, tiny_bert_dir, tiny_sentiment_dir):
    """A tiny fine-tuned BERT folder (HF files, tokenizer, labels.json) and its ONNX export in a
    sibling-free subfolder (so its tokenizer and labels come from the parent folder)."""
    from edgebert.bench.variants import load_hf_tokenizer
    from edgebert.export import export_onnx
    from edgebert.train import FinetuneConfig, finetune

    root = tmp_path_factory.mktemp("bench-clf")
    clf = root / "clf"
    finetune(str(tiny_bert_dir), str(tiny_sentiment_dir), out=str(clf),
             config=FinetuneConfig(epochs=1, batch_size=8, learning_rate=1e-3), progress=False)
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(clf).eval()
    onnx_path = export_onnx(model, load_hf_tokenizer(clf), clf / "export" / "model.onnx")
    return clf, onnx_path


@pytest.fixture(scope="module")
def bench_run(classifier, tiny_sentiment_dir, tmp_path_factory):
    """One full CLI bench of the HF folder and its ONNX export (memory measured)."""
    clf, onnx_path = classifier
    out = tmp_path_factory.mktemp("bench-run") / "out"
    result = run("bench", clf, onnx_path, "--data", tiny_sentiment_dir, "--out", out, "--seq-len", 16, *QUICK)
    return result, out


def test_bench_end_to_end(bench_run):
    from edgebert.bench import load_results

    result, out = bench_run
    assert result.exit_code == 0, result.output
    for name in ("bench.json", "bench.csv", "bench.md", "pareto.png"):
        assert (out / name).is_file(), name
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert f"Results written to {out}" in result.output

    res = load_results(out)  # validates the schema
    assert res["data"]["rows"] == 20 and res["data"]["split"] == "test"
    assert res["protocol"]["isolation"] == "in-process, interleaved, ORT spinning off"
    assert res["protocol"]["threads"] == 1 and res["environment"]["threads"] == 1
    assert res["command"].startswith("edgebert bench ") and "--seq-len 16" in res["command"]
    torch_v, onnx_v = res["variants"]
    assert [v["status"] for v in res["variants"]] == ["ok", "ok"], [v["error"] for v in res["variants"]]
    assert (torch_v["runtime"], onnx_v["runtime"]) == ("pytorch", "onnxruntime")
    assert res["reference"] == torch_v["name"]

    # accuracy through onnxruntime equals PyTorch's; predictions agree
    for key in ("accuracy", "macro_f1", "macro_precision", "macro_recall"):
        assert onnx_v["accuracy"][key] == pytest.approx(torch_v["accuracy"][key], abs=1e-6)
    assert onnx_v["accuracy"]["agreement"] == 1.0 and torch_v["accuracy"]["agreement"] == 1.0
    assert onnx_v["accuracy"]["n"] == 20

    for v in res["variants"]:
        lat = v["latency"]
        assert lat["n"] == 2 * 6  # rounds x latency samples
        assert 0 < lat["min"] <= lat["p10"] <= lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"]
        assert v["latency_fixed"]["seq_len"] == 16 and v["latency_fixed"]["n"] == 12
        assert v["throughput"]["rounds"] == 2 and v["throughput"]["mean"] > 0
        mem = v["memory"]
        assert "error" not in mem, mem
        assert mem["peak_rss_mb"] >= mem["rss_runtime_mb"] > 0 and mem["increase_mb"] >= 0
        assert v["load_s"] > 0 and v["size_bytes"] > 0
    assert torch_v["latency"]["ratio_vs_reference"] == pytest.approx(1.0)
    assert onnx_v["memory"]["torch_imported"] is False  # the ONNX worker loads no torch
    assert torch_v["memory"]["torch_imported"] is True
    assert onnx_v["precision"] == "fp32"

    with open(out / "bench.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["name"] for r in rows] == [torch_v["name"], onnx_v["name"]]
    assert float(rows[1]["accuracy"]) == pytest.approx(onnx_v["accuracy"]["accuracy"])
    md = (out / "bench.md").read_text()
    assert md in result.output.replace("\r\n", "\n") or md.strip() in result.output
    assert "p50 ms [p10–p90]" in md and f"{torch_v['name']} (ref)" in md and "@16 tok" in md


def test_report_merges_devices(bench_run, tmp_path):
    from edgebert.bench import protocol

    _, out = bench_run
    other = json.loads((out / "bench.json").read_text())
    env = other["environment"]
    env.update(hostname="jetson-orin-01", cpu="ARMv8 Processor rev 1 (v8l)", gpu="Orin (nvgpu)")
    env["device_label"] = protocol.device_label(env)
    (tmp_path / "orin").mkdir()
    (tmp_path / "orin" / "bench.json").write_text(json.dumps(other))

    r = run("report", out, tmp_path / "orin" / "bench.json", "--out", tmp_path / "report")
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "report" / "report.json").read_text())
    assert len(rep["devices"]) == 2 and "jetson-orin-01 (ARMv8 Processor rev 1 (v8l), Orin (nvgpu))" in rep["devices"]
    assert all(len(rows) == 2 for rows in rep["devices"].values())
    md = (tmp_path / "report" / "report.md").read_text()
    assert md.count("\n## ") == 2 and "## jetson-orin-01" in md
    assert (tmp_path / "report" / "pareto.png").is_file()

    bad = run("report", tmp_path / "nothing-here")
    assert_clean_error(bad, "neither a bench.json")


def test_unwritable_out_is_refused_before_any_timing(classifier, bench_run, tiny_sentiment_dir, read_only_dir):
    clf, _ = classifier
    res = run("bench", clf, "--data", tiny_sentiment_dir, "--out", read_only_dir / "b", *QUICK)
    assert_clean_error(res, f"Cannot write to '{read_only_dir}'", "Choose another --out")
    _, out = bench_run
    res = run("report", out, "--out", read_only_dir / "r")
    assert_clean_error(res, f"Cannot write to '{read_only_dir}'", "Choose another --out")
    assert list(read_only_dir.iterdir()) == []


def test_memory_is_measured_per_variant_in_fresh_processes(classifier):
    """A 300 MB buffer allocated in one variant's worker shows in its peak RSS only."""
    from edgebert.bench import protocol
    from edgebert.bench.variants import discover

    _, onnx_path = classifier
    spec = discover(onnx_path)[0].to_json()
    job = {"variant": spec, "threads": 1, "texts": ["i love this movie"], "runs": 2, "max_length": 32}
    heavy = protocol.measure_memory({**job, "ballast_mb": 300})
    light = protocol.measure_memory(job)
    assert "error" not in heavy and "error" not in light, (heavy, light)
    assert heavy["peak_rss_mb"] - light["peak_rss_mb"] > 250
    assert light["peak_rss_mb"] < 300  # neither this test process nor the other worker counts
    assert heavy["torch_imported"] is False and light["torch_imported"] is False


@pytest.mark.parametrize("make, needles", [
    (lambda d: d / "missing", ["does not exist", "Hugging Face model folder", "ONNX", "TorchScript", "artifact"]),
    (lambda d: (d / "notes.txt").write_text("hi") and d / "notes.txt", [".txt file", "bench accepts"]),
    (lambda d: (d / "empty").mkdir() or d / "empty", ["is not a model bench can run", "artifact folder"]),
])
def test_bad_paths_list_the_supported_kinds(make, needles, tmp_path, tiny_sentiment_dir):
    r = run("bench", make(tmp_path), "--data", tiny_sentiment_dir, "--out", tmp_path / "o", *QUICK)
    assert_clean_error(r, *needles)
    assert not (tmp_path / "o").exists()


def test_broken_onnx_row_fails_and_the_rest_is_written(classifier, tiny_sentiment_dir, tmp_path):
    clf, _ = classifier
    bad_dir = clf / "broken"
    bad_dir.mkdir(exist_ok=True)
    (bad_dir / "model.onnx").write_bytes(bytes(range(256)) * 8)  # not a protobuf
    out = tmp_path / "out"
    r = run("bench", clf, bad_dir / "model.onnx", "--data", tiny_sentiment_dir, "--out", out, "--no-memory", *QUICK)
    assert r.exit_code == 0, r.output
    assert "Traceback" not in r.output
    res = json.loads((out / "bench.json").read_text())
    good, bad = res["variants"]
    assert good["status"] == "ok" and good["accuracy"]["accuracy"] is not None
    assert bad["status"] == "failed" and bad["error"].startswith("load: ")
    assert "ONNXRuntimeError" in bad["error"] and "Traceback" not in bad["error"]
    assert bad["latency"] is None and bad["accuracy"] is None
    assert "broken/model.onnx (failed)" in (out / "bench.md").read_text()
    assert (out / "pareto.png").is_file() and (out / "bench.csv").is_file()


def test_nothing_measured_exits_2(classifier, tiny_sentiment_dir, tmp_path):
    """Every variant failing to load is a failed bench (exit 2, one line naming why), not a result."""
    clf, _ = classifier
    bad_dir = clf / "broken-only"
    bad_dir.mkdir(exist_ok=True)
    (bad_dir / "model.onnx").write_bytes(b"not an onnx model" * 64)
    r = run("bench", bad_dir / "model.onnx", "--data", tiny_sentiment_dir, "--out", tmp_path / "o", "--no-memory",
            *QUICK)
    assert r.exit_code == 2, r.output
    assert_clean_error(r, "nothing was measured", "broken-only/model.onnx failed: load:")
    assert len([line for line in r.output.splitlines() if line.strip()]) == 1, r.output
    assert (tmp_path / "o" / "bench.json").is_file()  # the failures stay on record


def test_label_mismatch_names_both_label_sets(classifier, tmp_path):
    clf, _ = classifier
    data = tmp_path / "spam"
    data.mkdir()
    for split in ("train", "test"):
        (data / f"{split}.csv").write_text("text,label\nwin money now,spam\nsee you at noon,ham\n" * 3)
    r = run("bench", clf, "--data", data, "--out", tmp_path / "o", *QUICK)
    assert_clean_error(r, "'ham'", "'spam'", "'negative'", "'positive'")


def test_unknown_reference_lists_variants(classifier, tiny_sentiment_dir, tmp_path):
    clf, onnx_path = classifier
    r = run("bench", clf, onnx_path, "--data", tiny_sentiment_dir, "--out", tmp_path / "o",
            "--reference", "nope", *QUICK)
    assert_clean_error(r, "Reference 'nope'", "clf", "export/model.onnx")
    assert not (tmp_path / "o").exists()  # checked before anything is written


def test_existing_output_folder_is_refused(classifier, tiny_sentiment_dir, tmp_path):
    clf, _ = classifier
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "bench.json").write_text("{}")
    r = run("bench", clf, "--data", tiny_sentiment_dir, "--out", tmp_path / "o", *QUICK)
    assert_clean_error(r, "already holds files", "--overwrite")


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_torchscript_variant(classifier, tiny_sentiment_dir, tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification

    from edgebert.bench import bench
    from edgebert.bench.variants import encode_numpy, load_hf_tokenizer

    class Logits(torch.nn.Module):  # named arguments: the runner feeds the inputs by name
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).logits

    clf, _ = classifier
    model = Logits(AutoModelForSequenceClassification.from_pretrained(clf)).eval()
    enc = encode_numpy(load_hf_tokenizer(clf), ["a b", "i love this movie a lot"], padding="longest")
    ids = torch.from_numpy(enc["input_ids"])  # transformers 5 tokenizers may omit token_type_ids
    args = tuple(torch.from_numpy(enc[k]) if k in enc else torch.zeros_like(ids)
                 for k in ("input_ids", "attention_mask", "token_type_ids"))
    ts_dir = tmp_path / "ts"
    ts_dir.mkdir()
    with torch.no_grad():
        traced = torch.jit.trace(model, args, strict=False)
    torch.jit.save(traced, str(ts_dir / "model.pt"))
    shutil.copy(clf / "labels.json", ts_dir / "labels.json")
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        if (clf / f).exists():
            shutil.copy(clf / f, ts_dir / f)

    res = bench([clf, ts_dir / "model.pt"], tiny_sentiment_dir, out=tmp_path / "o", rounds=1, warmup=1,
                latency_samples=4, batch=8, threads=1, memory=False, progress=False, max_rows=10).results
    assert res["data"]["rows"] == 10 and res["data"]["max_rows"] == 10  # max_rows caps the split
    ref, ts = res["variants"]
    assert ref["accuracy"]["n"] == ts["accuracy"]["n"] == 10
    assert ts["status"] == "ok", ts["error"]
    assert ts["runtime"] == "torchscript" and ts["precision"] == "fp32"
    assert ts["accuracy"]["accuracy"] == pytest.approx(ref["accuracy"]["accuracy"])
    assert ts["accuracy"]["agreement"] == 1.0


def test_artifact_folder_gives_one_variant_per_model_file(classifier, tmp_path):
    from edgebert.bench.variants import discover

    clf, onnx_path = classifier
    art = tmp_path / "artifact"
    (art / "model").mkdir(parents=True)
    (art / "tokenizer").mkdir()
    (art / "manifest.json").write_text("{}")
    shutil.copy(clf / "labels.json", art / "labels.json")
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(clf / f, art / "tokenizer" / f)
    shutil.copy(onnx_path, art / "model" / "model.onnx")
    (art / "model" / "model.plan").write_bytes(b"engine")

    specs = discover(art)
    assert [(s.name, s.runtime) for s in specs] == [("artifact/model.onnx", "onnxruntime"),
                                                     ("artifact/model.plan", "tensorrt")]
    onnx_spec, plan = specs
    assert onnx_spec.tokenizer_dir == str(art / "tokenizer")
    assert onnx_spec.label_names == ["negative", "positive"] or set(onnx_spec.label_names) == {"negative", "positive"}
    assert onnx_spec.skip_reason is None and plan.kind == "tensorrt"
    assert plan.tokenizer_dir == onnx_spec.tokenizer_dir and plan.label_names == onnx_spec.label_names
    from edgebert.export.tensorrt import tensorrt_available

    if not tensorrt_available():
        assert plan.skip_reason and "TensorRT not installed" in plan.skip_reason
    (art / "manifest.json").write_text(json.dumps({"stages": [{"kind": "build-tensorrt",
                                                               "metrics": {"precision": "fp16"}}]}))
    assert discover(art)[1].precision == "fp16"  # what build-tensorrt built it with


def test_engine_is_skipped_off_the_gpu(classifier, tiny_sentiment_dir, tmp_path, monkeypatch):
    """With TensorRT importable but bench on the CPU, the engine is reported skipped (with why) and
    the other variants are measured."""
    from edgebert.bench import bench, variants

    clf, onnx_path = classifier
    art = tmp_path / "artifact"
    (art / "model").mkdir(parents=True)
    (art / "manifest.json").write_text(json.dumps({  # a jetson artifact whose engine is still to build
        "target": {"name": "jetson", "runtime": "tensorrt", "budgets": {"latency_ms": 1e5, "memory_mb": 1024}},
        "deploy": {"model": "model/model.onnx"}}))
    for f in ("labels.json", "tokenizer.json", "tokenizer_config.json"):
        shutil.copy(clf / f, art / f)
    shutil.copy(onnx_path, art / "model" / "model.onnx")
    (art / "model" / "model.plan").write_bytes(b"engine")
    monkeypatch.setattr(variants, "_tensorrt_importable", lambda: True)
    bench([str(art)], str(tiny_sentiment_dir), split="dev", out=tmp_path / "b", rounds=1, warmup=1,
          latency_samples=4, memory=False, progress=False, device="cpu")
    data = json.loads((tmp_path / "b" / "bench.json").read_text())
    by_name = {v["name"]: v for v in data["variants"]}
    assert by_name["artifact/model.onnx"]["status"] == "ok"
    engine = by_name["artifact/model.plan"]
    assert engine["status"] == "skipped" and "CUDA GPU only" in engine["error"] and engine["runtime"] == "tensorrt"
    # the target's budgets, checked on the files it deploys: met (latency), not measured (memory=False)
    onnx_budgets = by_name["artifact/model.onnx"]["budgets"]
    assert onnx_budgets["target"] == "jetson" and onnx_budgets["within_latency"] is True
    assert onnx_budgets["within_memory"] is None and engine["budgets"]["within_latency"] is None
    text = (tmp_path / "b" / "bench.md").read_text()
    assert "**artifact/model.onnx**: target jetson's budgets on this device: p50" in text
    assert "(budget 100000 ms: met); peak RSS – MiB (budget 1024 MiB: not measured)" in text


def test_baselines_without_optimum(classifier, tiny_sentiment_dir, tmp_path, monkeypatch):
    """Without optimum (and openvino) the bench completes: those rows skipped with what to install, the
    others measured, and the headline computed from what was measured."""
    from edgebert.bench import baselines, bench

    for module in ("optimum.onnxruntime", "openvino", "nncf"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if absent
    # an AVX-512 VNNI CPU: the Optimum rows come with their AVX2 twins
    monkeypatch.setattr(baselines, "optimum_preset", lambda *a, **k: ("avx512_vnni", "CPU flag avx512_vnni"))
    clf, _ = classifier
    res = bench([clf], tiny_sentiment_dir, baselines=True, out=tmp_path / "o", rounds=1, warmup=1,
                latency_samples=4, batch=8, threads=1, memory=False, progress=False).results
    by_base = {v["baseline"]: v for v in res["variants"]}
    assert set(by_base) == {"pytorch-fp32", "onnx-fp32", "optimum-int8", "optimum-int8-avx2", "optimum-o3-int8",
                            "optimum-o3-int8-avx2", "openvino-int8", "edgebert-fused-int8"}
    assert by_base["pytorch-fp32"]["name"] == "clf" and res["reference"] == "clf"
    onnx_v = by_base["onnx-fp32"]
    assert onnx_v["status"] == "ok", onnx_v["error"]
    assert onnx_v["validation"]["max_abs_logit_diff"] < 1e-4 and onnx_v["validation"]["label_agreement"] == 1.0
    assert onnx_v["accuracy"]["agreement"] == 1.0
    assert (tmp_path / "o" / "baselines" / "onnx-fp32" / "model.onnx").is_file()
    for name in ("optimum-int8", "optimum-int8-avx2", "optimum-o3-int8", "optimum-o3-int8-avx2"):
        opt = by_base[name]
        assert opt["status"] == "skipped" and opt["error"] == "optimum not installed: pip install 'edgebert[optimum]'"
    ov = by_base["openvino-int8"]
    assert ov["status"] == "skipped" and ov["error"] == "openvino / nncf not installed: pip install 'edgebert[openvino]'"
    assert by_base["edgebert-fused-int8"]["status"] == "ok", by_base["edgebert-fused-int8"]["error"]
    head = res["headline"]
    assert head["strongest"]["baseline"] in ("pytorch-fp32", "onnx-fp32")  # the only third-party rows measured
    assert head["optimum_avx2"] is None and any("AVX2" in n for n in head["notes"])
    assert [r["baseline"] for r in head["rows"]] == ["edgebert-fused-int8"]
    text = (tmp_path / "o" / "bench.md").read_text()
    assert "optimum-int8 (skipped)" in text and "baseline/openvino-int8 (skipped)" in text
    assert "Strongest baseline" in text


@pytest.mark.slow
def test_optimum_baseline(classifier, tiny_sentiment_dir, tmp_path):
    try:
        from optimum.onnxruntime import ORTModelForSequenceClassification, ORTQuantizer  # noqa: F401
    except ImportError as exc:  # absent, or installed beside a transformers it does not support
        pytest.skip(f"optimum / optimum-onnx not usable here: {exc}")
    from edgebert.bench import bench

    clf, _ = classifier
    res = bench([clf], tiny_sentiment_dir, baselines=True, out=tmp_path / "o", rounds=1, warmup=1,
                latency_samples=4, batch=8, threads=1, progress=False).results
    opt = next(v for v in res["variants"] if v["baseline"] == "optimum-int8")
    assert opt["status"] == "ok", opt["error"]
    assert opt["precision"] == "int8" and opt["runtime"] == "onnxruntime"
    assert opt["validation"]["optimum_preset"] in ("avx512_vnni", "avx512", "avx2", "arm64")
    assert opt["validation"]["preset_reason"] != "chosen by the caller"  # the CPU's flags chose it
    assert any("AutoQuantizationConfig" in n for n in opt["notes"])
    assert opt["accuracy"]["n"] == 20 and opt["memory"]["torch_imported"] is False


@pytest.mark.slow
def test_optimum_anchor_with_a_chosen_preset(classifier, tmp_path):
    # benchmarks/anchor_presets.py builds the AVX2 anchor on any x86 CPU to compare it with the flags' pick
    try:
        from optimum.onnxruntime import ORTModelForSequenceClassification, ORTQuantizer  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"optimum / optimum-onnx not usable here: {exc}")
    from edgebert.bench.baselines import build_optimum_int8
    from edgebert.bench.variants import discover

    clf, _ = classifier
    spec = build_optimum_int8(discover(str(clf))[0], tmp_path / "a", preset="avx2")
    assert spec.error is None and Path(spec.path).is_file()
    assert spec.validation == {"optimum_preset": "avx2", "preset_reason": "chosen by the caller"}
    assert any("AutoQuantizationConfig.avx2(" in n for n in spec.notes)


def test_speedup_column_never_rounds_to_zero():
    """A variant 250x faster than the reference reads '250x', not the latency ratio 0.004 as '0.00'."""
    from edgebert.bench.report import markdown_table

    rows = [{"name": "eager", "status": "ok", "p50_ms": 100.0, "ratio_vs_reference": 1.0, "is_reference": True},
            {"name": "int8", "status": "ok", "p50_ms": 0.4, "ratio_vs_reference": 0.004},
            {"name": "slow", "status": "ok", "p50_ms": 300.0, "ratio_vs_reference": 3.0}]
    table = markdown_table(rows)
    assert "speed-up vs ref" in table.splitlines()[0]
    cells = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")] for line in table.splitlines()[2:]}
    assert "250x" in cells["int8"] and "1.00x" in cells["eager (ref)"] and "0.333x" in cells["slow"]
    assert "0.00" not in cells["int8"]


def test_pareto_accuracy_axis_stops_at_one(tmp_path, monkeypatch):
    import matplotlib.pyplot as plt

    from edgebert.bench.report import plot_pareto

    figures = []
    real_close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (figures.append(fig), real_close(fig)))
    points = [{"name": "a", "p50_ms": 2.0, "accuracy": 1.0, "peak_rss_mb": 90, "runtime": "onnxruntime"},
              {"name": "b", "p50_ms": 20.0, "accuracy": 0.99, "peak_rss_mb": 400, "runtime": "pytorch"}]
    plot_pareto(points, tmp_path / "p.png", title="t")
    low, high = figures[-1].axes[0].get_ylim()
    assert high <= 1.0 and low < 0.99


def test_baselines_of_an_artifact_come_from_its_finetuned_model(tiny_bert_dir, tiny_classifier_dir,
                                                                 tiny_sentiment_dir, tmp_path, monkeypatch):
    """README's main job then `bench ARTIFACT --baselines`: the fine-tuned model lives inside the artifact
    (stages/01-finetune/model) and the manifest names it; a run that started from a trained model names
    that model. Where the folder is gone, the message says what to pass."""
    import yaml

    from edgebert.pipeline import compress

    monkeypatch.setitem(sys.modules, "optimum.onnxruntime", None)  # the Optimum anchor is tested elsewhere
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "r", "stages": [
        {"kind": "finetune", "epochs": 1, "batch_size": 8, "learning_rate": 1e-3}, {"kind": "export-onnx"}]}))
    art = compress(str(tiny_bert_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "art", recipe=recipe,
                   progress=False).out
    r = run("bench", art, "--data", tiny_sentiment_dir, "--baselines", "--out", tmp_path / "b", "--no-memory", *QUICK)
    assert r.exit_code == 0, r.output
    res = json.loads((tmp_path / "b" / "bench.json").read_text())
    by_base = {v["baseline"]: v for v in res["variants"]}
    eager = by_base["pytorch-fp32"]
    assert Path(eager["path"]) == (art / "stages" / "01-finetune" / "model").resolve()
    assert eager["status"] == "ok" and res["reference"] == eager["name"] == "baseline/pytorch-fp32"
    assert by_base["onnx-fp32"]["status"] == "ok" and by_base["onnx-fp32"]["accuracy"]["agreement"] == 1.0
    assert any(v["name"] == "art/model.onnx" and v["status"] == "ok" for v in res["variants"])

    # a run without a finetune stage: its input model (it had the trained head)
    recipe.write_text(yaml.safe_dump({"name": "r", "stages": [{"kind": "export-onnx"}]}))
    art2 = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "art2",
                    recipe=recipe, progress=False).out
    from edgebert.bench.variants import finetuned_variant

    assert Path(finetuned_variant(art2).path) == Path(tiny_classifier_dir).resolve()

    shutil.rmtree(art / "stages" / "01-finetune")  # e.g. only the deployable part was copied
    r = run("bench", art, "--data", tiny_sentiment_dir, "--baselines", "--out", tmp_path / "b2", *QUICK)
    assert_clean_error(r, "stages/01-finetune/model", f"edgebert bench FINETUNED_DIR {art} --data DATA --baselines")
    assert not (tmp_path / "b2").exists()


def test_an_onnx_variant_that_falls_back_to_the_cpu_says_so(classifier, tiny_sentiment_dir, tmp_path, monkeypatch):
    """A CUDA bench with an onnxruntime that has no CUDA provider runs the ONNX file on the CPU: the row
    records the provider that ran it and a note, and the CLI prints a warning, instead of passing CPU
    figures off as GPU ones."""
    import onnxruntime

    from edgebert.bench import bench, run as bench_run_module

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("a GPU build of onnxruntime: CUDA may really run here")
    _clf, onnx_path = classifier
    monkeypatch.setattr(bench_run_module, "_resolve_device", lambda device: "cuda")  # a GPU host, as torch sees it
    result = bench([str(onnx_path)], str(tiny_sentiment_dir), split="dev", out=tmp_path / "b", rounds=1, warmup=1,
                   latency_samples=4, memory=False, progress=False, device="cuda")
    variant = result.results["variants"][0]
    assert variant["status"] == "ok" and variant["device"] == "cuda"
    assert variant["providers"] == ["CPUExecutionProvider"]
    assert "CUDAExecutionProvider was requested but the model runs on CPUExecutionProvider" in \
        variant["provider_fallback"]
    assert variant["provider_fallback"] in variant["notes"]
    assert "CUDAExecutionProvider was requested" in result.markdown
    rows = list(csv.DictReader(open(tmp_path / "b" / "bench.csv", encoding="utf-8")))
    assert rows[0]["provider"] == "CPUExecutionProvider"


def test_a_text_in_artifact_is_fed_strings_and_scores_as_its_token_in_model(tiny_classifier_dir, tiny_sentiment_dir,
                                                                               tmp_path):
    """A text-in graph (the tokenizer inside, onnxruntime-extensions' operators) loads with the extensions library,
    is scored and timed on the texts themselves, and answers as the token-in file it was made from."""
    pytest.importorskip("onnxruntime_extensions", reason="text-in needs onnxruntime-extensions (edgebert[textin])")
    from conftest import run_recipe
    from edgebert.bench import bench

    stages = [{"kind": "export-onnx", "fuse": False}, {"kind": "quantize", "max_accuracy_drop": 100.0}]
    (tmp_path / "tok").mkdir()
    (tmp_path / "txt").mkdir()
    token_in = run_recipe(tmp_path / "tok", tiny_classifier_dir, tiny_sentiment_dir, stages).out
    text_in = run_recipe(tmp_path / "txt", tiny_classifier_dir, tiny_sentiment_dir, [*stages, {"kind": "text-in"}]).out
    bench([str(token_in), str(text_in)], str(tiny_sentiment_dir), split="dev", out=tmp_path / "b", rounds=2,
          warmup=1, latency_samples=4, progress=False)
    data = json.loads((tmp_path / "b" / "bench.json").read_text())
    by_dir = {Path(v["path"]).parents[2].name: v for v in data["variants"]}  # tok|txt / art / model / file
    txt, tok = by_dir["txt"], by_dir["tok"]
    assert txt["status"] == "ok", txt["error"]
    assert any("text-in" in n for n in txt["notes"])
    assert txt["accuracy"]["accuracy"] == tok["accuracy"]["accuracy"] and txt["accuracy"]["agreement"] == 1.0
    assert len(txt["latency"]["rounds_ms"]) == 2 and len(txt["latency"]["rounds_ms"][0]) == 4
    assert txt["memory"]["peak_rss_mb"] > 0 and not txt["memory"].get("error")  # the fresh process feeds strings too
