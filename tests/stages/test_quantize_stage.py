"""The quantize stage: its config (the recipe's quantize entry), run through the pipeline (QDQ int8, fp16
for GPU targets), its per-channel search and how it scores dynamic int8."""

import json

import pytest

from conftest import run_recipe, run_stage

from edgebert.config import build_config
from edgebert.errors import ConfigError
from edgebert.stages.quantize import QuantizeConfig

RECIPE = [{"kind": "export-onnx", "fuse": False},
          {"kind": "quantize", "mode": "int8-static", "symmetric": True, "calibration_samples": 16,
           "max_accuracy_drop": 100.0}]


def test_config_defaults_round_trip_and_descriptions():
    cfg = QuantizeConfig()
    assert (cfg.kind, cfg.mode, cfg.weight_type, cfg.calibration_samples, cfg.calibration_method) == \
        ("quantize", "int8-dynamic", "s8", 256, "minmax")
    assert cfg.max_accuracy_drop is None and cfg.exclude == []
    full = QuantizeConfig(mode="int8-static", per_channel=True, symmetric=True, reduce_range=True, weight_type="s8",
                          calibration_samples=64, calibration_method="entropy", max_accuracy_drop=1.0, exclude=["a"])
    assert QuantizeConfig.model_validate(json.loads(full.model_dump_json())) == full
    for name, field in QuantizeConfig.model_fields.items():
        if name != "kind":
            assert field.description, f"{name} has no description"
    with pytest.raises(ConfigError, match="bogus: unknown key"):
        build_config(QuantizeConfig, {"mode": "int8-dynamic", "bogus": 1})
    with pytest.raises(ConfigError, match="symmetric applies to int8-static only"):
        build_config(QuantizeConfig, {"mode": "int8-dynamic", "symmetric": True})
    with pytest.raises(ConfigError, match="mode"):
        build_config(QuantizeConfig, {"mode": "int4"})


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_stage_runs_and_is_recorded(arch, request, tmp_path):
    import onnx

    rec, _files, out = run_stage(request, tmp_path, "quantize", RECIPE, arch)
    ops = {n.op_type for n in onnx.load(str(out / "model" / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ: what TensorRT's explicit int8 takes
    # every weight MatMul quantized (file size is no test here: the tiny model is mostly float embeddings)
    assert rec["metrics"]["nodes_quantized"] >= 6 and not rec["metrics"]["nodes_float"]
    assert "label_agreement" in rec["validation"]


def test_quantize_fp16_for_gpu_targets(tmp_path, tiny_classifier_dir, tiny_sentiment_dir):
    import onnx

    stages = [{"kind": "export-onnx", "fuse": False}, {"kind": "quantize", "mode": "fp16"}]
    result = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages, target="server-gpu")
    rec = result.manifest["stages"][-1]
    assert rec["config"]["max_accuracy_drop"] == 1.0  # the server-gpu budget, resolved
    assert rec["metrics"]["bytes"] < 0.8 * rec["metrics"]["bytes_in"]  # MiniLM: 77 -> 38 MB; tiny: overheads
    assert rec["validation"]["label_agreement"] >= 0.9 and rec["validation"]["max_abs_logit_diff"] < 0.05
    graph = onnx.load(str(result.out / "model" / "model.onnx")).graph
    assert any(init.data_type == onnx.TensorProto.FLOAT16 for init in graph.initializer)


def test_quantize_tries_per_channel_before_keeping_layers_in_float(tmp_path, tiny_classifier_dir, tiny_sentiment_dir,
                                                                   monkeypatch):
    import shutil as _shutil

    import edgebert.compress.quantize as q

    real = q.quantize_with_budget
    calls = []

    def fake(src, out, eval_fn, **settings):
        report = real(src, out, eval_fn, **{**settings, "max_accuracy_drop": None})
        calls.append(settings["per_channel"])
        # per-tensor "needs" a layer in float; per-channel fits the budget
        return dict(report, within_budget=True, kept_fp32=[] if settings["per_channel"] else ["layer.0"])

    monkeypatch.setattr(q, "quantize_with_budget", fake)
    stages = [{"kind": "export-onnx", "fuse": True}, {"kind": "quantize", "mode": "int8-dynamic"}]
    result = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages)
    rec = result.manifest["stages"][-1]
    assert calls == [False, True]
    assert rec["metrics"]["weight_granularity_search"]["chosen"] == "per-channel"
    assert rec["metrics"]["kept_fp32"] == [] and (result.out / "model" / "model.onnx").is_file()
    assert not (result.out / "stages" / "02-quantize" / "per_channel.onnx").exists()
    _shutil.rmtree(tmp_path / "art")
    _shutil.rmtree(tmp_path / ".edgebert-stage-cache")  # the stage runs again (same key, other fake)
    calls.clear()
    monkeypatch.setattr(q, "quantize_with_budget", lambda *a, **k: dict(fake(*a, **k), kept_fp32=[]))
    result = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages)
    assert calls == [False] and result.manifest["stages"][-1]["metrics"]["weight_granularity_search"] is None


def test_dynamic_int8_dev_accuracy_scores_each_text_alone(tmp_path, tiny_classifier_dir, tiny_sentiment_dir,
                                                         monkeypatch):
    """Dynamic int8 answers depend on the batch (activation scales per call): the quantize row's dev
    accuracy is each dev text run alone, as the deployed model answers one request. Batched runs are made
    to answer the other label here, so a figure from batches cannot pass for it."""
    import numpy as np
    import onnxruntime as ort

    from edgebert.data import load_dataset
    from edgebert.export.onnx import onnx_feeds
    from edgebert.models import load_tokenizer

    stages = [{"kind": "export-onnx", "fuse": False}]
    run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages)  # exported with the real sessions
    real = ort.InferenceSession

    class BatchSensitive:
        def __init__(self, *args, **kwargs):
            self._s = real(*args, **kwargs)

        def __getattr__(self, name):
            return getattr(self._s, name)

        def run(self, outputs, feeds, *args, **kwargs):
            result = self._s.run(outputs, feeds, *args, **kwargs)
            if next(iter(feeds.values())).shape[0] > 1:
                result = [-r for r in result]  # the other label for every row of a batch
            return result

    monkeypatch.setattr(ort, "InferenceSession", BatchSensitive)
    result = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir,
                        stages + [{"kind": "quantize", "mode": "int8-dynamic", "max_accuracy_drop": 100.0}])
    rec = result.manifest["stages"][-1]
    monkeypatch.setattr(ort, "InferenceSession", real)
    assert result.skipped == ["01-export-onnx"]

    labels = json.loads((result.out / "labels.json").read_text())
    labels = labels["labels"] if isinstance(labels, dict) else labels
    dev = load_dataset(str(tiny_sentiment_dir)).with_labels(labels).split("dev")
    tok = load_tokenizer(str(tiny_classifier_dir))
    session = real(str(result.out / "model" / "model.onnx"), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    alone = [int(session.run(None, onnx_feeds(names, dict(tok([t], return_tensors="np"))))[0].argmax(-1)[0])
             for t in dev.texts]
    assert rec["metrics"]["dev_accuracy"] == pytest.approx(float(np.mean(np.array(alone) == np.array(dev.labels))))
