"""Every registered stage, run through the pipeline on tiny trained BERT / ALBERT classifiers, plus
the completeness checks: each stage kind is tested here, every target and recipe file validates,
every config round-trips through JSON."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
import yaml

from edgebert.errors import ConfigError, MissingDependencyError
from edgebert.pipeline import compress
from edgebert.stages.registry import STAGES, stage_kinds
from edgebert.plan import load_recipe, target_recipe
from edgebert.targets import list_recipes, list_targets, load_target, recipes_dir, targets_dir

ROOT = Path(__file__).resolve().parents[1]
TINY = {"batch_size": 8, "learning_rate": 3e-3, "head_learning_rate": 3e-3, "patience": 0}

# One recipe per stage kind (after the stages it needs). test_every_stage_has_a_test checks that
# this table covers the registry.
RECIPES = {
    "finetune": [{"kind": "finetune", "when": "always", "epochs": 2, **TINY}, {"kind": "export-onnx"}],
    "prune": [{"kind": "prune", "heads": 0.5, "ffn": 0.5, "samples": 16}, {"kind": "export-onnx"}],
    "distill": [{"kind": "prune", "layers": 1, "samples": 16}, {"kind": "distill", "epochs": 1, **TINY},
                {"kind": "export-onnx"}],
    "sparsify": [{"kind": "sparsify", "sparsity": 0.5}, {"kind": "export-onnx", "fuse": False}],
    "export-onnx": [{"kind": "export-onnx", "fuse": False}],
    "quantize": [{"kind": "export-onnx", "fuse": False},
                 {"kind": "quantize", "mode": "int8-static", "symmetric": True, "calibration_samples": 16,
                  "max_accuracy_drop": 100.0}],
    "export-torchscript": [{"kind": "quantize", "mode": "torch-int8-dynamic"}, {"kind": "export-torchscript"}],
    "export-mobile": [{"kind": "export-onnx", "fuse": False}, {"kind": "quantize", "max_accuracy_drop": 100.0},
                      {"kind": "export-mobile"}],
    "build-tensorrt": [{"kind": "export-onnx", "fuse": False}, {"kind": "build-tensorrt", "precision": "fp16"}],
    "export-pytorch": [{"kind": "export-pytorch", "dtype": "float16"}],
}


def run_recipe(tmp_path: Path, model_dir: Path, data_dir: Path, stages: list[dict], target: str = "cpu"):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump({"name": "recipe", "stages": stages}), encoding="utf-8")
    return compress(str(model_dir), target, data=str(data_dir), out=tmp_path / "art", recipe=recipe, progress=False)


def test_every_stage_has_a_test():
    assert sorted(RECIPES) == sorted(stage_kinds())


@pytest.mark.parametrize("kind", sorted(RECIPES))
@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_stage_runs_and_is_recorded(kind, arch, tmp_path, tiny_classifier_dir, tiny_albert_classifier_dir,
                                    tiny_sentiment_dir):
    model = tiny_classifier_dir if arch == "bert" else tiny_albert_classifier_dir
    result = run_recipe(tmp_path, model, tiny_sentiment_dir, RECIPES[kind])
    manifest = json.loads((result.out / "manifest.json").read_text())
    rec = next(s for s in manifest["stages"] if s["kind"] == kind)
    assert rec["status"] == "done" and rec["output_sha256"] and rec["input_sha256"]
    assert rec["config"]["kind"] == kind
    files = sorted(p.name for p in (result.out / "model").iterdir())
    CHECKS[kind](rec, files, result.out)


def _finetune(rec, files, out):
    assert rec["skipped"] is None and rec["metrics"]["dev"]["accuracy"] >= 0.5


def _prune(rec, files, out):
    m = rec["metrics"]
    assert m["parameters_after"] < m["parameters_before"]
    assert rec["validation"]["n"] > 0 and 0 <= rec["validation"]["label_agreement"] <= 1


def _distill(rec, files, out):
    assert rec["metrics"]["report"]["history"] and "teacher_dev_accuracy" in rec["metrics"]


def _sparsify(rec, files, out):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    m = rec["metrics"]
    assert m["encoder_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert m["deflated_bytes"] < m["deflated_bytes_before"]
    assert 0 <= rec["validation"]["label_agreement"] <= 1
    # the zeros reach the exported file (dense: same tensors, half of the encoder's weights zero)
    inits = onnx.load(str(out / "model" / "model.onnx")).graph.initializer
    zeros = sum(int((numpy_helper.to_array(t) == 0).sum()) for t in inits if t.data_type == onnx.TensorProto.FLOAT)
    assert zeros >= m["report"]["zeros"]
    assert np.isfinite(m["dev_accuracy"])


def _export_onnx(rec, files, out):
    assert files == ["model.onnx"]
    assert rec["validation"]["max_abs_logit_diff"] < 1e-3 and rec["validation"]["label_agreement"] == 1.0


def _quantize(rec, files, out):
    import onnx

    ops = {n.op_type for n in onnx.load(str(out / "model" / "model.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops  # QDQ: what TensorRT's explicit int8 takes
    # every weight MatMul quantized (file size is no test here: the tiny model is mostly float embeddings)
    assert rec["metrics"]["nodes_quantized"] >= 6 and not rec["metrics"]["nodes_float"]
    assert "label_agreement" in rec["validation"]


def _torchscript(rec, files, out):
    assert files == ["model.pt"]
    assert rec["metrics"]["torch_quantization"]["mode"] == "torch-int8-dynamic"
    assert rec["validation"]["max_abs_logit_diff"] < 1e-3  # the trace equals the quantized eager model


def _mobile(rec, files, out):
    assert files == ["EdgebertClassifier.kt", "EdgebertClassifier.swift", "INTEGRATION.md", "model.ort",
                     "required_operators.config"]  # everything an app needs, with the guide
    assert rec["validation"]["label_agreement"] == 1.0
    assert any(line.startswith("ai.onnx") for line in rec["metrics"]["required_operators"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["deploy"]["model"] == "model/model.ort" and manifest["deploy"]["format"] == "ort"


def _tensorrt(rec, files, out):
    from edgebert.export.tensorrt import tensorrt_available

    assert "build_engine.sh" in files and "model.onnx" in files
    script = out / "model" / "build_engine.sh"
    assert script.stat().st_mode & stat.S_IXUSR
    text = script.read_text()
    assert "--fp16" in text and "input_ids:1x1" in text and "input_ids:32x128" in text  # cpu target: max_batch 32
    if not tensorrt_available():
        assert rec["metrics"]["engine"].startswith("deferred")
        manifest = json.loads((out / "manifest.json").read_text())
        assert "build_engine.sh" in manifest["deploy"]["engine"]


def _pytorch(rec, files, out):
    assert "config.json" in files and "model.safetensors" in files
    assert rec["validation"]["label_agreement"] >= 0.99
    config = json.loads((out / "model" / "config.json").read_text())
    assert config.get("torch_dtype", config.get("dtype")) == "float16"  # transformers 4 / 5 spelling


CHECKS = {"finetune": _finetune, "prune": _prune, "distill": _distill, "sparsify": _sparsify,
          "export-onnx": _export_onnx,
          "quantize": _quantize, "export-torchscript": _torchscript, "export-mobile": _mobile,
          "build-tensorrt": _tensorrt, "export-pytorch": _pytorch}


def test_finetune_when_needed_keeps_a_trained_head(tmp_path, tiny_classifier_dir, tiny_sentiment_dir):
    """A model with a trained head for the data's labels is not fine-tuned again (when: needed, the default):
    the stage is recorded as skipped with its dev score, and the next stages get the input model."""
    result = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir,
                        [{"kind": "finetune"}, {"kind": "export-onnx", "fuse": False}])
    finetune, export = result.manifest["stages"]
    assert "already has a trained head" in finetune["skipped"]
    assert finetune["metrics"]["dev"]["accuracy"] >= 0.5 and not list((tmp_path / "art" / "stages" / "01-finetune").iterdir())
    assert finetune["state"]["model"] == str(tiny_classifier_dir) == export["state"]["model"]


def test_export_torchscript_pt2_through_the_pipeline(tmp_path, tiny_classifier_dir, tiny_sentiment_dir):
    result = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir,
                        [{"kind": "export-torchscript", "format": "pt2"}])
    rec = result.manifest["stages"][0]
    assert sorted(p.name for p in (tmp_path / "art" / "stages" / "01-export-torchscript").iterdir()) == ["model.pt2"]
    assert rec["validation"]["label_agreement"] == 1.0 and rec["validation"]["max_abs_logit_diff"] < 1e-4
    deploy = result.manifest["deploy"]
    assert (deploy["model"], deploy["format"], deploy["runtime"]) == ("model/model.pt2", "torch-export", "pytorch")


def test_tensorrt_required_but_missing_is_a_clear_error(tmp_path, tiny_classifier_dir, tiny_sentiment_dir):
    from edgebert.export.tensorrt import tensorrt_available

    if tensorrt_available():
        pytest.skip("TensorRT is installed here")
    stages = [{"kind": "export-onnx", "fuse": False}, {"kind": "build-tensorrt", "require": True}]
    with pytest.raises(MissingDependencyError, match="TensorRT not installed"):
        run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages, target="jetson")
    assert not (tmp_path / "art").exists()  # refused before any stage ran: no export made first


def test_tensorrt_stage_refuses_a_graph_the_device_could_not_build(tmp_path, tiny_classifier_dir, tiny_sentiment_dir,
                                                                   monkeypatch):
    """Even where the recipe check is bypassed (fused graph into build-tensorrt), the stage inspects the ONNX
    with onnx alone before it writes build_engine.sh, also where TensorRT is absent."""
    from edgebert.errors import ExportError
    from edgebert.stages import registry

    # order_problem, not check_order: plan.py holds its own reference to check_order
    monkeypatch.setattr(registry, "order_problem", lambda *args, **kwargs: None)
    stages = [{"kind": "export-onnx", "fuse": True}, {"kind": "build-tensorrt", "precision": "fp16"}]
    with pytest.raises(ExportError, match="onnxruntime-only operators"):
        run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages, target="jetson")
    assert not list((tmp_path / "art").rglob("build_engine.sh"))


def test_tensorrt_stage_key_names_the_host(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, monkeypatch):
    """A run deferred where TensorRT is absent is not reused where it is (nor an engine across GPUs)."""
    from edgebert.stages import build_tensorrt

    stages = [{"kind": "export-onnx", "fuse": False}, {"kind": "build-tensorrt", "precision": "fp16"}]
    run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages, target="jetson")
    again = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages, target="jetson")
    assert again.ran == []
    monkeypatch.setattr(build_tensorrt, "_tensorrt_host", lambda cfg: "tensorrt 10.3.0 on Orin")
    moved = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages, target="jetson")
    assert moved.ran == ["02-build-tensorrt"]


def test_deferred_engine_deploys_what_runs_now(tmp_path, tiny_classifier_dir, tiny_sentiment_dir):
    """server-gpu without TensorRT: deploy names the fp32 ONNX as what runs now (not as fp16 TensorRT),
    the target's TensorRT fp16, and the fp16 PyTorch fallback."""
    from edgebert.export.tensorrt import tensorrt_available

    if tensorrt_available():
        pytest.skip("TensorRT is installed here: the engine is built, nothing is deferred")
    stages = [{"kind": "export-onnx", "fuse": False}, {"kind": "build-tensorrt"},
              {"kind": "export-pytorch", "dtype": "float16"}]
    result = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages, target="server-gpu")
    deploy = result.manifest["deploy"]
    assert deploy["model"] == "model/model.onnx" and deploy["format"] == "onnx"
    assert (deploy["runtime"], deploy["precision"]) == ("onnxruntime", "fp32")
    assert (deploy["target_runtime"], deploy["target_precision"]) == ("tensorrt", "fp16")
    assert deploy["fallback"] == {"runtime": "pytorch", "model": "model/model.safetensors", "precision": "fp16"}
    report = (result.out / "report.md").read_text()
    assert "(onnxruntime, fp32); the target runs tensorrt fp16 once model/build_engine.sh" in report
    assert "fallback `model/model.safetensors` (pytorch, fp16)" in report
    from edgebert.bench.variants import discover

    # bench checks the target's budgets on what it deploys: the ONNX file and the fp16 checkpoint's folder
    budgets = {v.name: v.budgets for v in discover(result.out)}
    assert budgets["art/model"] == budgets["art/model.onnx"] == {"target": "server-gpu", "latency_ms": 2,
                                                                "memory_mb": 4096}


def test_cpu_deploy_reads_precision_from_the_file(tmp_path, tiny_classifier_dir, tiny_sentiment_dir):
    """A cpu target (int8) run without quantize deploys an fp32 file: deploy says fp32, not the target's int8."""
    result = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, [{"kind": "export-onnx", "fuse": False}])
    deploy = result.manifest["deploy"]
    assert (deploy["runtime"], deploy["precision"]) == ("onnxruntime", "fp32")
    assert (deploy["target_runtime"], deploy["target_precision"]) == ("onnxruntime", "int8")
    assert "fallback" not in deploy and "the target runs onnxruntime int8" in (result.out / "report.md").read_text()


@pytest.mark.tensorrt
def test_tensorrt_engine_is_built_and_validated(tmp_path, tiny_classifier_dir, tiny_sentiment_dir):
    pytest.importorskip("tensorrt", reason="TensorRT not installed")
    stages = [{"kind": "export-onnx", "fuse": False}, {"kind": "build-tensorrt", "precision": "fp16", "require": True}]
    result = run_recipe(tmp_path, tiny_classifier_dir, tiny_sentiment_dir, stages, target="jetson")
    rec = result.manifest["stages"][-1]
    assert rec["metrics"]["engine"] == "built" and (result.out / "model" / "model.plan").is_file()
    assert rec["validation"]["label_agreement"] >= 0.99


# -- completeness: targets, recipes, configs ---------------------------------------------------

def test_required_targets_exist():
    assert {"cpu", "cpu-arm64", "server-gpu", "jetson", "mobile"} <= set(list_targets())


@pytest.mark.parametrize("name", list_targets())
def test_every_target_validates_and_uses_distill_after_prune(name):
    from edgebert.pipeline import plan

    the_plan = plan(name)
    assert the_plan.target.name == name
    kinds = [s.kind for s in the_plan.stages]
    assert "prune" in kinds and kinds.index("distill") == kinds.index("prune") + 1
    assert the_plan.target.budgets.accuracy_drop > 0 and the_plan.target.providers


@pytest.mark.parametrize("name", list_recipes())
def test_every_recipe_validates(name):
    recipe_name, stages = load_recipe(name)
    assert recipe_name == name and stages


@pytest.mark.parametrize("kind", stage_kinds())
def test_every_stage_config_round_trips_json_and_describes_its_fields(kind):
    cls = STAGES[kind].config
    cfg = cls()
    assert cls.model_validate_json(cfg.model_dump_json()) == cfg
    missing = [n for n, f in cls.model_fields.items() if n != "kind" and not f.description]
    assert not missing, f"{kind}: fields without description: {missing}"


def test_target_and_recipe_models_round_trip_json():
    for name in list_targets():
        t = load_target(name)
        assert type(t).model_validate_json(t.model_dump_json()) == t


def test_bad_target_file_names_file_and_key(tmp_path):
    src = yaml.safe_load((targets_dir() / "cpu.yaml").read_text())
    bad = dict(src, name="mine", colour="red")
    bad["shapes"] = dict(src["shapes"], min_length=500)
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(bad))
    with pytest.raises(ConfigError) as err:
        load_target(str(path))
    text = str(err.value)
    assert str(path) in text and "colour: unknown key" in text and "shapes" in text
    wrong = tmp_path / "other.yaml"
    wrong.write_text(yaml.safe_dump(dict(src)))
    with pytest.raises(ConfigError, match="must equal the file name"):
        load_target(str(wrong))
    broken = tmp_path / "broken.yaml"
    broken.write_text("name: broken\nruntime: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml:\d+"):
        load_target(str(broken))
    norecipe = tmp_path / "norecipe.yaml"
    norecipe.write_text(yaml.safe_dump(dict(src, name="norecipe", recipe="nosuch")))
    with pytest.raises(ConfigError) as err:
        target_recipe(load_target(str(norecipe)))
    text = str(err.value)
    assert str(norecipe) in text and "recipe: Unknown recipe 'nosuch'" in text and "cpu" in text


def test_targets_and_recipes_dirs_are_in_the_source_tree():
    assert targets_dir() == ROOT / "targets" and recipes_dir() == ROOT / "recipes"


def test_env_var_points_at_other_targets(tmp_path, monkeypatch):
    (tmp_path / "lab.yaml").write_text((targets_dir() / "cpu.yaml").read_text().replace("name: cpu", "name: lab"))
    monkeypatch.setenv("EDGEBERT_TARGETS", str(tmp_path))
    assert list_targets() == ["lab"] and load_target("lab").runtime == "onnxruntime"


def test_wheel_install_finds_targets_under_prefix_share(tmp_path, monkeypatch):
    import sys

    import edgebert.targets as targets

    share = tmp_path / "share" / "edgebert" / "targets"
    share.mkdir(parents=True)
    (share / "cpu.yaml").write_text((targets_dir() / "cpu.yaml").read_text())
    monkeypatch.setattr(targets, "_ROOT", tmp_path / "site-packages")  # no source tree beside the package
    monkeypatch.setattr(sys, "prefix", str(tmp_path))
    assert targets.targets_dir() == share and targets.list_targets() == ["cpu"]


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
