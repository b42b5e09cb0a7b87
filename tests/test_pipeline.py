"""The compression pipeline: recipes over tiny BERT / ALBERT, the artifact folder, resume and skip."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import yaml
from transformers import AutoConfig

from edgebert.errors import ConfigError, OutputExistsError, UnknownStageError, UnknownTargetError
from edgebert.pipeline import compress, plan
from edgebert.stages import registry as stage_registry

# Tiny models learn with a flat 3e-3 (see conftest._tiny_training); two layers, so prune drops one.
TINY_RECIPE = [
    {"kind": "finetune", "epochs": 8, "batch_size": 8, "learning_rate": 3e-3, "head_learning_rate": 3e-3,
     "patience": 0, "seed": 0},
    {"kind": "prune", "layers": 1, "ffn": 0.25, "samples": 32},
    {"kind": "distill", "epochs": 3, "batch_size": 8, "learning_rate": 3e-3, "head_learning_rate": 3e-3,
     "patience": 0},
    {"kind": "export-onnx", "fuse": True},
    {"kind": "quantize", "mode": "int8-dynamic", "max_accuracy_drop": 100.0},
]


def write_recipe(path: Path, stages: list[dict], name: str | None = None) -> Path:
    path.write_text(yaml.safe_dump({"name": name or path.stem, "stages": stages}), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, tiny_bert_dir, tiny_sentiment_dir):
    """compress over a randomly initialised tiny BERT (no head): finetune, prune, distill, export, int8."""
    d = tmp_path_factory.mktemp("pipeline")
    recipe = write_recipe(d / "tiny.yaml", TINY_RECIPE)
    out = d / "art"
    logs: list[str] = []
    result = compress(str(tiny_bert_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe,
                      progress=False, log=logs.append)
    return result, recipe, logs


def test_artifact_folder_has_every_part(tiny_run):
    result, _, _ = tiny_run
    out = result.out
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    assert [s["kind"] for s in manifest["stages"]] == [s["kind"] for s in TINY_RECIPE]
    assert (out / "model" / "model.onnx").is_file()
    assert (out / "tokenizer" / "tokenizer.json").is_file()
    assert (out / "tokenizer" / "vocab.txt").is_file()  # what apps tokenize from (docs/tokenization.md)
    assert sorted(json.loads((out / "labels.json").read_text())["labels"]) == ["negative", "positive"]
    assert manifest["deploy"]["model"] == "model/model.onnx"
    assert manifest["deploy"]["input_names"][0] == "input_ids"
    assert (out / "report.md").read_text().count("|") > 20
    for rec in manifest["stages"]:
        for key in ("config", "input_sha256", "output_sha256", "metrics", "seconds", "versions", "host", "seed"):
            assert key in rec, (rec["kind"], key)
        assert rec["config"]["kind"] == rec["kind"]
    assert manifest["run"]["target"] == "cpu"
    assert isinstance(manifest["host"]["kernel_flags"], list)  # e.g. avx2 / avx512_vnni: which int8 kernels run


def test_each_stage_is_validated_against_its_input(tiny_run):
    manifest = tiny_run[0].manifest
    by_kind = {s["kind"]: s for s in manifest["stages"]}
    assert by_kind["prune"]["metrics"]["parameters_after"] < by_kind["prune"]["metrics"]["parameters_before"]
    assert by_kind["prune"]["metrics"]["report"]["layers_kept"] and len(by_kind["prune"]["metrics"]["report"]["layers_kept"]) == 1
    export = by_kind["export-onnx"]["validation"]
    assert export["max_abs_logit_diff"] < 1e-3 and export["label_agreement"] >= 0.99
    assert by_kind["export-onnx"]["metrics"]["fusion"]["attention_nodes"] >= 1
    q = by_kind["quantize"]
    assert 0.0 <= q["validation"]["label_agreement"] <= 1.0
    assert q["metrics"]["bytes"] < q["metrics"]["bytes_in"]
    assert manifest["summary"]["final_dev_accuracy"] == q["metrics"]["dev_accuracy"]
    # the distilled student reaches the task again (the tiny task is trivially learnable)
    assert by_kind["distill"]["metrics"]["dev_accuracy"] >= 0.9
    # the tiny recipe distils at 3e-3, above compact BERT's fine-tuning rate (3e-4): recorded and logged
    assert "above the fine-tuning rate of compact BERT" in by_kind["distill"]["metrics"]["learning_rate_warning"]
    assert any(m.startswith("Warning: distill learning_rate 0.003") for m in tiny_run[2])


def test_artifact_runs_and_matches_its_stage_output(tiny_run):
    import onnxruntime as ort
    from transformers import AutoTokenizer

    out = tiny_run[0].out
    tok = AutoTokenizer.from_pretrained(out / "tokenizer")
    labels = json.loads((out / "labels.json").read_text())["labels"]
    session = ort.InferenceSession(str(out / "model" / "model.onnx"), providers=["CPUExecutionProvider"])
    enc = tok(["great fun", "awful and boring"], padding=True, return_tensors="np")
    names = [i.name for i in session.get_inputs()]
    logits = session.run(None, {n: enc[n].astype(np.int64) if n in enc else np.zeros_like(enc["input_ids"])
                                for n in names})[0]
    assert logits.shape == (2, len(labels))


def test_rerun_skips_unchanged_stages(tiny_run, tiny_bert_dir, tiny_sentiment_dir):
    result, recipe, _ = tiny_run
    before = (result.out / "model" / "model.onnx").read_bytes()
    again = compress(str(tiny_bert_dir), "cpu", data=str(tiny_sentiment_dir), out=result.out, recipe=recipe,
                     progress=False)
    assert again.ran == [] and len(again.skipped) == len(TINY_RECIPE)
    assert (result.out / "model" / "model.onnx").read_bytes() == before


def test_changed_stage_reruns_from_there(tiny_run, tiny_bert_dir, tiny_sentiment_dir, tmp_path):
    result, _, _ = tiny_run
    changed = [dict(s) for s in TINY_RECIPE]
    changed[-1] = {"kind": "quantize", "mode": "int8-dynamic", "per_channel": True, "max_accuracy_drop": 100.0}
    recipe = write_recipe(tmp_path / "changed.yaml", changed)
    again = compress(str(tiny_bert_dir), "cpu", data=str(tiny_sentiment_dir), out=result.out, recipe=recipe,
                     progress=False)
    assert again.ran == ["05-quantize"] and len(again.skipped) == 4
    manifest = json.loads((result.out / "manifest.json").read_text())
    assert manifest["stages"][-1]["config"]["per_channel"] is True


def _interrupt_at(kind: str, monkeypatch):
    """Make stage ``kind`` raise KeyboardInterrupt (as Ctrl-C would) when it starts; returns the real stage."""
    stage = stage_registry.get_stage(kind)

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setitem(stage_registry.STAGES, kind, stage_registry.StageDef(**{**stage.__dict__, "fn": boom}))
    return stage


def test_interrupted_run_resumes_from_last_finished_stage(tiny_classifier_dir, tiny_sentiment_dir, tmp_path,
                                                          monkeypatch):
    recipe = write_recipe(tmp_path / "r.yaml", [{"kind": "export-onnx", "fuse": False},
                                                {"kind": "quantize", "mode": "int8-dynamic"}])
    out = tmp_path / "art"
    stage = _interrupt_at("quantize", monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "running" and [s["kind"] for s in manifest["stages"]] == ["export-onnx"]
    assert not (out / "model").exists()
    leftovers = [p.name for p in (out / "stages").iterdir()]
    assert leftovers == ["01-export-onnx"], leftovers  # no half-written quantize folder
    import filelock

    with filelock.FileLock(str(out / ".edgebert-compress.lock"), timeout=0):  # released on the way out
        pass
    monkeypatch.setitem(stage_registry.STAGES, "quantize", stage)
    result = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe,
                      progress=False)
    assert result.skipped == ["01-export-onnx"] and result.ran == ["02-quantize"]


def test_a_run_stopped_in_its_first_stage_resumes(tiny_classifier_dir, tiny_sentiment_dir, tmp_path, monkeypatch):
    """The manifest is written before stage 1: a folder whose first stage was interrupted is this run's
    (resumed, or replaced with --overwrite), not a folder of unknown files."""
    recipe = write_recipe(tmp_path / "r.yaml", [{"kind": "export-onnx", "fuse": False}])
    out = tmp_path / "art"
    stage = _interrupt_at("export-onnx", monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe, progress=False)
    manifest = json.loads((out / "manifest.json").read_text())
    assert (manifest["kind"], manifest["status"], manifest["stages"]) == ("edgebert-artifact", "running", [])
    monkeypatch.setitem(stage_registry.STAGES, "export-onnx", stage)
    result = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe,
                      progress=False)
    assert result.ran == ["01-export-onnx"] and (out / "model" / "model.onnx").is_file()
    again = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe,
                     progress=False, overwrite=True, cache=False)
    assert again.ran == ["01-export-onnx"]
    cached = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe,
                      progress=False, overwrite=True)  # the folder is replaced; the same stage comes from the cache
    assert cached.ran == [] and cached.skipped == ["01-export-onnx"] and (out / "model" / "model.onnx").is_file()


def test_a_killed_runs_staging_folders_and_lock_are_cleared(tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    """SIGKILL leaves no chance to clean up: the next run removes the staging folders and the lock of the
    dead process, and refuses a folder whose lock a live process holds."""
    import subprocess
    import sys

    from edgebert.cache import LOCK_NAME

    recipe = write_recipe(tmp_path / "r.yaml", [{"kind": "export-onnx", "fuse": False}])
    out = tmp_path / "art"
    compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe, progress=False)
    (out / "stages" / ".02-quantize.partial-x1").mkdir()
    (out / "stages" / ".02-quantize.partial-x1" / "model.onnx").write_bytes(b"half")
    (out / ".model.partial-x2").mkdir()
    (out / "stages" / ".01-export-onnx.old-123").mkdir()
    import filelock

    held = filelock.FileLock(str(out / LOCK_NAME), timeout=0)  # another run, alive: its lock is held
    with held:
        with pytest.raises(OutputExistsError, match="being written by another edgebert compress"):
            compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe,
                     progress=False, overwrite=True)  # not even --overwrite deletes a folder in use
    assert (out / "manifest.json").is_file()
    # A run killed while holding the lock (SIGKILL: no clean-up, as in a stopped container): the OS
    # releases it, whatever host name or pid the next run has.
    killed = subprocess.Popen([sys.executable, "-c", "import filelock, sys, time; "
                               f"filelock.FileLock({str(out / LOCK_NAME)!r}).acquire(); print('held', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    assert killed.stdout.readline().strip() == "held"
    killed.kill()
    killed.wait()
    again = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe,
                     progress=False)
    assert again.skipped == ["01-export-onnx"]
    hidden = [p.name for p in out.rglob(".*") if p.name != LOCK_NAME]
    assert hidden == [], hidden  # staging leftovers are gone
    with filelock.FileLock(str(out / LOCK_NAME), timeout=0):  # and the lock is free again
        pass


def test_run_seed_shifts_every_stage_seed(tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    """--seed redraws the recipe's random choices: each stage's own seed moves by the run seed (so the
    published runs, seed 0, keep the recipe's seeds) and the distilled student changes with it."""
    from safetensors.numpy import load_file

    stages = [{"kind": "prune", "ffn": 0.25, "samples": 16, "seed": 5},
              {"kind": "distill", "epochs": 1, "batch_size": 4, "learning_rate": 3e-3, "head_learning_rate": 3e-3,
               "patience": 0},
              {"kind": "export-pytorch"}]
    recipe = write_recipe(tmp_path / "r.yaml", stages)
    weights = {}
    for seed in (0, 3):
        out = tmp_path / f"s{seed}"
        compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe,
                 seed=seed, progress=False)
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["run"]["seed"] == seed
        assert [s["config"].get("seed") for s in manifest["stages"]] == [5 + seed, 0 + seed, None]
        weights[seed] = load_file(str(next((out / "model").rglob("model.safetensors"))))
    assert any(not np.array_equal(weights[0][k], weights[3][k]) for k in weights[0])


def test_distillation_rates_are_resolved_for_the_model_before_the_stage_is_keyed(
        tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    """A recipe that leaves distill's rates unset runs at the model family's (compact BERT: 1e-4,
    head alike), records them, and keys the stage as a recipe that writes them out: re-run with the
    rates spelled out, nothing runs again."""
    from edgebert.compress.distill import default_distill_learning_rates

    config = AutoConfig.from_pretrained(tiny_classifier_dir)
    rates = default_distill_learning_rates(config)
    assert rates == (1e-4, 1e-4)  # the tiny model's hidden size is <= 512
    stages = [{"kind": "prune", "ffn": 0.25, "samples": 16},
              {"kind": "distill", "epochs": 1, "batch_size": 4, "patience": 0},
              {"kind": "export-pytorch"}]
    out = tmp_path / "run"
    unset = write_recipe(tmp_path / "unset.yaml", stages)
    planned = plan("cpu", unset)
    assert next(s for s in planned.stages if s.kind == "distill").learning_rate is None
    assert next(s for s in planned.for_model(config).stages if s.kind == "distill").learning_rate == 1e-4
    first = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=unset,
                     progress=False)
    distill = first.manifest["stages"][1]
    assert (distill["config"]["learning_rate"], distill["config"]["head_learning_rate"]) == rates
    assert (first.manifest["recipe"][1]["learning_rate"], first.manifest["recipe"][1]["head_learning_rate"]) == rates
    report = distill["metrics"]["report"]
    assert (report["learning_rate"], report["head_learning_rate"]) == rates
    assert "learning_rate_warning" not in distill["metrics"]

    stages[1].update(learning_rate=1e-4, head_learning_rate=1e-4)
    spelled = write_recipe(tmp_path / "spelled.yaml", stages)  # the recipe name is no input
    again = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=spelled,
                     progress=False)
    assert again.ran == [] and again.skipped == ["01-prune", "02-distill", "03-export-pytorch"]
    stages[1]["learning_rate"] = 2e-4  # another rate: the stage runs again
    other = write_recipe(tmp_path / "other.yaml", stages)
    third = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=other,
                     progress=False)
    assert third.ran == ["02-distill", "03-export-pytorch"]
    assert third.manifest["stages"][1]["config"]["head_learning_rate"] == 1e-4  # as written


def test_output_folder_of_another_run_is_refused(tiny_run, tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    result, recipe, _ = tiny_run
    with pytest.raises(OutputExistsError, match="another run"):
        compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=result.out, recipe=recipe,
                 progress=False)
    (tmp_path / "notes.txt").write_text("mine")
    for overwrite in (False, True):  # --overwrite replaces only edgebert's own artifacts
        with pytest.raises(OutputExistsError, match="not an edgebert compress artifact"):
            compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path, recipe=recipe,
                     progress=False, overwrite=overwrite)
    assert (tmp_path / "notes.txt").read_text() == "mine"
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(OutputExistsError, match="is a file, not a folder"):
        compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "a-file",
                 recipe=recipe, progress=False, overwrite=True)
    assert (tmp_path / "a-file").read_text() == "mine"


@pytest.mark.parametrize("stages, message", [
    ([{"kind": "export-onnx"}, {"kind": "prune", "layers": 1}], "comes after 'export-onnx'"),
    ([{"kind": "quantize"}, {"kind": "export-onnx"}], "needs an ONNX model"),
    ([{"kind": "distill"}, {"kind": "export-onnx"}], "a 'prune' stage must come before"),
    ([{"kind": "export-onnx", "fuse": True}, {"kind": "build-tensorrt"}], "fuse: false"),
    ([{"kind": "export-onnx", "fuse": False}, {"kind": "quantize", "mode": "int8-dynamic"},
      {"kind": "build-tensorrt"}], "int8-static"),
    ([{"kind": "export-onnx", "fuse": False}, {"kind": "quantize", "mode": "int8-static"},
      {"kind": "build-tensorrt", "precision": "int8"}], "symmetric: true"),  # uint8 zero points: trtexec refuses
    ([{"kind": "export-onnx", "fuse": False}, {"kind": "quantize", "mode": "int8-static", "symmetric": True,
                                                "weight_type": "u8"}, {"kind": "build-tensorrt"}], "weight_type: s8"),
    ([{"kind": "finetune"}], "no stage writes a deployable model"),
    ([{"kind": "export-onnx", "fuse": False}, {"kind": "build-tensorrt"}, {"kind": "quantize"}],
     "comes after 'build-tensorrt'"),
    ([{"kind": "prune", "heads": 1.5}, {"kind": "export-onnx"}], "heads"),
    ([{"kind": "export-onnx", "colour": "red"}], "colour: unknown key"),
])
def test_bad_recipes_fail_before_any_work(tmp_path, stages, message):
    recipe = write_recipe(tmp_path / "bad.yaml", stages)
    with pytest.raises(ConfigError, match=message):
        plan("cpu", recipe)


@pytest.mark.parametrize("stages, message", [
    ([{"kind": "prune", "layers": 2}, {"kind": "export-onnx"}], r"stage 1 \(prune\): layers: 2 would drop every layer"),
    ([{"kind": "prune", "layers": [0, 5]}, {"kind": "export-onnx"}], r"keeps \[5\], but the model has 2 layers"),
    ([{"kind": "prune", "layers": 1}, {"kind": "prune", "layers": [1]}, {"kind": "export-onnx"}],
     r"stage 2 \(prune\): layers: keeps \[1\], but the model has 1 layers"),
    # 2 -> 1 layer: one teacher layer (0..1) per student layer
    ([{"kind": "prune", "layers": 1}, {"kind": "distill", "layer_map": [0, 1]}, {"kind": "export-onnx"}],
     r"stage 2 \(distill\): layer_map \[0, 1\] must name one teacher layer \(0..1\) for each of the student's 1"),
    ([{"kind": "prune", "layers": 1}, {"kind": "distill", "layer_map": [2]}, {"kind": "export-onnx"}],
     r"layer_map \[2\] must name one teacher layer \(0..1\)"),
    ([{"kind": "prune", "layers": 1}, {"kind": "prune", "ffn": 0.5}, {"kind": "distill", "layer_map": [0, 0]},
      {"kind": "export-onnx"}], r"stage 3 \(distill\): layer_map"),  # the teacher: before the first prune
])
def test_recipe_that_does_not_fit_the_model_fails_before_any_work(stages, message, tiny_classifier_dir,
                                                                  tiny_sentiment_dir, tmp_path, monkeypatch):
    from edgebert import models

    assert AutoConfig.from_pretrained(str(tiny_classifier_dir)).num_hidden_layers == 2
    monkeypatch.setattr(models, "load", lambda *a, **k: pytest.fail("a stage ran"))
    recipe = write_recipe(tmp_path / "r.yaml", stages)
    with pytest.raises(ConfigError, match=message):
        compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "o", recipe=recipe,
                 progress=False)
    assert not (tmp_path / "o").exists()


def test_layer_maps_that_fit_pass_the_model_check():
    from transformers import BertConfig

    from edgebert.config import build_config
    from edgebert.stages.registry import check_model, get_stage

    def stages(*entries):
        return [build_config(get_stage(e["kind"]).config, dict(e), source="t") for e in entries]

    six = BertConfig(num_hidden_layers=6)
    check_model(stages({"kind": "prune", "layers": 2}, {"kind": "distill", "layer_map": [0, 2, 4, 5]}), six)
    check_model(stages({"kind": "prune", "layers": [1, 3]}, {"kind": "prune", "heads": 0.5},
                       {"kind": "distill", "layer_map": [1, 5]}), six)  # the teacher keeps its 6 layers
    check_model(stages({"kind": "prune", "heads": 0.5}, {"kind": "distill", "layer_map": [5, 4, 3, 2, 1, 0]}), six)
    with pytest.raises(ConfigError, match="0..5"):
        check_model(stages({"kind": "prune", "layers": [1, 3]}, {"kind": "distill", "layer_map": [1, 6]}), six)


def test_fusing_a_model_fusion_does_not_know_fails_before_any_work(tiny_sentiment_dir, tmp_path):
    from transformers import RobertaConfig

    RobertaConfig(vocab_size=100, hidden_size=32, num_hidden_layers=6, num_attention_heads=2,
                  intermediate_size=64).save_pretrained(tmp_path / "roberta")
    fused = write_recipe(tmp_path / "fused.yaml", [{"kind": "finetune"}, {"kind": "export-onnx", "fuse": True}])
    with pytest.raises(ConfigError, match=r"stage 2 \(export-onnx\): fuse: .*this model is 'roberta'.*fuse: false"):
        compress(str(tmp_path / "roberta"), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "o", recipe=fused,
                 progress=False)
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="this model is 'roberta'"):  # the cpu target's own recipe fuses
        compress(str(tmp_path / "roberta"), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "o", progress=False)


def test_stages_take_the_targets_max_length_unless_the_recipe_sets_one(tmp_path):
    from edgebert.targets import targets_dir

    profile = yaml.safe_load((targets_dir() / "cpu.yaml").read_text(encoding="utf-8"))
    profile.update(name="short", shapes={**profile["shapes"], "opt_length": 32, "max_length": 64})
    (tmp_path / "short.yaml").write_text(yaml.safe_dump(profile), encoding="utf-8")
    recipe = write_recipe(tmp_path / "r.yaml", [
        {"kind": "finetune"}, {"kind": "prune", "heads": 0.5, "max_length": 256}, {"kind": "distill"},
        {"kind": "export-onnx"}, {"kind": "quantize"}])
    stages = plan(str(tmp_path / "short.yaml"), recipe).stages
    assert {s.kind: s.max_length for s in stages} == {
        "finetune": 64, "prune": 256, "distill": 64, "export-onnx": 64, "quantize": 64}
    assert stages[1].heads == 0.5 and stages[-1].max_accuracy_drop == 1.0  # the rest as before
    assert all(s.max_length == 128 for s in plan("cpu", recipe).stages if s.kind != "prune")  # cpu: 128
    profile["shapes"]["max_length"] = 9000
    (tmp_path / "short.yaml").write_text(yaml.safe_dump(profile), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"short.yaml:\n  shapes.max_length: .*8192"):
        plan(str(tmp_path / "short.yaml"), recipe)


def test_unknown_stage_and_target_list_the_known_ones(tmp_path):
    recipe = write_recipe(tmp_path / "bad.yaml", [{"kind": "lowrank"}])
    with pytest.raises(UnknownStageError, match=r"Known: finetune, albertize, prune, distill, sparsify"):
        plan("cpu", recipe)
    with pytest.raises(UnknownTargetError, match=r"Known: .*cpu.*jetson.*mobile"):
        plan("jetson-nano")


def test_model_without_head_needs_finetune_stage(tiny_bert_dir, tiny_sentiment_dir, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", [{"kind": "export-onnx"}])
    with pytest.raises(ConfigError, match="no trained head"):
        compress(str(tiny_bert_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "o", recipe=recipe,
                 progress=False)
    assert not (tmp_path / "o").exists()


def test_albert_pipeline_keeps_shared_weights(tiny_albert_classifier_dir, tiny_sentiment_dir, tmp_path):
    stages = [{"kind": "prune", "heads": 0.5, "samples": 32},
              {"kind": "distill", "epochs": 2, "batch_size": 8, "learning_rate": 3e-3, "head_learning_rate": 3e-3,
               "patience": 0},
              {"kind": "export-onnx", "fuse": True},
              {"kind": "quantize", "mode": "int8-dynamic", "max_accuracy_drop": 100.0}]
    recipe = write_recipe(tmp_path / "albert.yaml", stages)
    result = compress(str(tiny_albert_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "a",
                      recipe=recipe, progress=False)
    by_kind = {s["kind"]: s for s in result.manifest["stages"]}
    fusion = by_kind["export-onnx"]["metrics"]["fusion"]
    assert fusion["weight_bytes_out"] <= 1.1 * fusion["weight_bytes_in"]
    assert by_kind["export-onnx"]["validation"]["label_agreement"] >= 0.99
    cfg = json.loads((tmp_path / "a" / "stages" / "01-prune" / "model" / "config.json").read_text())
    assert cfg["model_type"] == "albert" and cfg["edgebert_pruning"]["heads"]


def test_bench_runs_the_artifact(tiny_run, tiny_sentiment_dir, tmp_path):
    from edgebert.bench import bench

    bench([str(tiny_run[0].out)], str(tiny_sentiment_dir), split="dev", out=tmp_path / "b", rounds=1,
          warmup=1, latency_samples=5, memory=False, progress=False)
    data = json.loads((tmp_path / "b" / "bench.json").read_text())
    variant = data["variants"][0]
    assert variant["name"].endswith("model.onnx") and variant["precision"] == "int8"
    assert variant["accuracy"]["accuracy"] >= 0.5 and variant["latency"]["p50"] > 0


def test_same_data_spelt_differently_is_the_same_run(tiny_run, tiny_bert_dir, tiny_sentiment_dir, monkeypatch):
    import os

    result, recipe, _ = tiny_run
    monkeypatch.chdir(tiny_sentiment_dir.parent)
    again = compress(str(tiny_bert_dir), "cpu", data=os.path.relpath(tiny_sentiment_dir), out=result.out,
                     recipe=recipe, progress=False)
    # an earlier test may have changed the last stage; everything before it is reused
    assert again.skipped[:4] == ["01-finetune", "02-prune", "03-distill", "04-export-onnx"]


def test_public_api_exposes_compress_and_targets():
    import edgebert

    assert edgebert.load_target("jetson").runtime == "tensorrt"
    assert edgebert.compress.__doc__ and "compress" in edgebert.__all__


def test_a_run_resumed_after_a_stage_revision_redoes_that_stage_only_where_it_changed(
        tiny_classifier_dir, tiny_sentiment_dir, tmp_path, monkeypatch):
    """Runs made before distill's row-order change: the seed-1 run redoes distill (and what follows)
    when resumed, the seed-0 run reuses every stage."""
    from edgebert.stages import registry

    recipe = write_recipe(tmp_path / "r.yaml", [
        {"kind": "prune", "ffn": 0.25, "samples": 16},
        {"kind": "distill", "epochs": 1, "batch_size": 8, "patience": 0},
        {"kind": "export-pytorch"}])
    stage = registry.get_stage("distill")
    monkeypatch.setitem(registry.STAGES, "distill", registry.StageDef(**{**stage.__dict__, "revision": None}))
    for seed in (0, 1):  # made by the old code
        compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / f"s{seed}",
                 recipe=recipe, seed=seed, progress=False)
    monkeypatch.setitem(registry.STAGES, "distill", stage)
    again = {seed: compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / f"s{seed}",
                            recipe=recipe, seed=seed, progress=False) for seed in (0, 1)}
    assert again[0].ran == [] and len(again[0].skipped) == 3
    assert again[1].skipped == ["01-prune"] and again[1].ran == ["02-distill", "03-export-pytorch"]


def test_a_folder_whose_run_finished_no_stage_is_taken_by_another_run(tiny_classifier_dir, tiny_sentiment_dir,
                                                                      tmp_path, monkeypatch):
    """A run that stopped before its first stage finished left nothing to lose: the command repeated with
    other inputs (a repaired model, another data file) takes the folder without --overwrite. A folder
    with a finished stage of another run is still refused."""
    import shutil

    recipe = write_recipe(tmp_path / "r.yaml", [{"kind": "export-onnx", "fuse": False}])
    out = tmp_path / "art"
    stage = _interrupt_at("export-onnx", monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe, progress=False)
    monkeypatch.setitem(stage_registry.STAGES, "export-onnx", stage)
    other = tmp_path / "other-data"
    shutil.copytree(tiny_sentiment_dir, other)
    train = next(p for p in other.iterdir() if p.name.startswith("train"))
    train.write_text(train.read_text(encoding="utf-8") + train.read_text(encoding="utf-8").splitlines()[1] + "\n",
                     encoding="utf-8")
    result = compress(str(tiny_classifier_dir), "cpu", data=str(other), out=out, recipe=recipe, progress=False)
    assert result.ran == ["01-export-onnx"]
    with pytest.raises(OutputExistsError, match="holds another run"):
        compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe, progress=False)


def test_the_run_identity_covers_columns_labels_and_versions(tiny_classifier_dir, tiny_sentiment_dir, tmp_path,
                                                             monkeypatch):
    """Every input that changes a stage's output changes its key: the text column read from the same file
    (refused as another run, not resumed), and the versions of the libraries that shape outputs (every
    stage runs again)."""
    import csv

    from edgebert import artifact

    data = tmp_path / "two-columns"
    data.mkdir()
    for split in ("train", "dev"):
        rows = list(csv.reader(open(tiny_sentiment_dir / f"{split}.csv", encoding="utf-8")))[1:]
        with open(data / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["text", "other", "label"])
            w.writerows((t, t.upper(), label) for t, label in rows)
    recipe = write_recipe(tmp_path / "r.yaml", [{"kind": "export-onnx", "fuse": False}])
    out = tmp_path / "art"
    first = compress(str(tiny_classifier_dir), "cpu", data=str(data), out=out, recipe=recipe, progress=False)
    assert first.manifest["run"]["data"]["columns"]["text"] == "text"
    with pytest.raises(OutputExistsError, match="different data"):
        compress(str(tiny_classifier_dir), "cpu", data=str(data), out=out, recipe=recipe, progress=False,
                 text_column="other")
    again = compress(str(tiny_classifier_dir), "cpu", data=str(data), out=out, recipe=recipe, progress=False)
    assert again.skipped == ["01-export-onnx"]
    upgraded = {**artifact.output_versions(), "onnxruntime": "99.0"}
    monkeypatch.setattr(artifact, "output_versions", lambda: upgraded)
    said = []
    rerun = compress(str(tiny_classifier_dir), "cpu", data=str(data), out=out, recipe=recipe, progress=False,
                     log=said.append)
    assert rerun.ran == ["01-export-onnx"]
    assert any("onnxruntime" in line and "-> 99.0" in line for line in said), said


def test_compressing_for_another_target_takes_the_shared_stages_from_the_cache(tiny_classifier_dir,
                                                                               tiny_sentiment_dir, tmp_path):
    """One model, two targets: the stages both recipes run alike (same key: config, inputs, position)
    run once; the second run takes them from the stage cache beside the artifact folders (hard links) and
    runs only what differs. A damaged cached file is never reused."""
    stages = [{"kind": "prune", "ffn": 0.25, "samples": 16}, {"kind": "export-onnx", "fuse": False}]
    a = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "a",
                 recipe=write_recipe(tmp_path / "a.yaml", stages + [{"kind": "quantize", "mode": "int8-dynamic",
                                                                     "max_accuracy_drop": 100.0}]),
                 progress=False)
    assert a.ran == ["01-prune", "02-export-onnx", "03-quantize"]
    said = []
    b = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "b",
                 recipe=write_recipe(tmp_path / "b.yaml", stages), progress=False, log=said.append)
    assert b.ran == [] and b.skipped == ["01-prune", "02-export-onnx"], said
    assert any("taken from" in line for line in said)
    prune_a, prune_b = (next((tmp_path / x / "stages" / "01-prune").rglob("model.safetensors")) for x in "ab")
    assert os.path.samefile(prune_a, prune_b)  # linked, not copied
    record = b.manifest["stages"][0]
    assert record["taken_from"] == str((tmp_path / "a" / "stages" / "01-prune").resolve())
    assert (tmp_path / "b" / "model" / "model.onnx").is_file()
    # another seed is another stage: it runs
    c = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "c",
                 recipe=write_recipe(tmp_path / "c.yaml", stages), progress=False, seed=1)
    assert c.ran == ["01-prune", "02-export-onnx"]
    # a damaged file (shared by link with the cache) makes the entry stale: the stage runs again
    onnx_a = tmp_path / "a" / "stages" / "02-export-onnx" / "model.onnx"
    onnx_a.write_bytes(onnx_a.read_bytes()[:-1])
    d = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "d",
                 recipe=write_recipe(tmp_path / "d.yaml", stages), progress=False)
    assert d.skipped == ["01-prune"] and d.ran == ["02-export-onnx"]
    e = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "e",
                 recipe=write_recipe(tmp_path / "e.yaml", stages), progress=False, cache=False)
    assert e.ran == ["01-prune", "02-export-onnx"]


def test_the_shipped_file_is_scored_and_the_summary_names_it(tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    """The summary's final accuracy is the deployed file's own (here the .ort the mobile path ships, run by
    the torch-free runtime on the whole dev split), not an upstream ONNX model's, and says which file."""
    import numpy as np

    from edgebert.data import load_dataset
    from edgebert.runtime import Classifier

    recipe = write_recipe(tmp_path / "r.yaml", [{"kind": "export-onnx", "fuse": False},
                                                {"kind": "quantize", "max_accuracy_drop": 100.0},
                                                {"kind": "export-mobile"}])
    result = compress(str(tiny_classifier_dir), "mobile", data=str(tiny_sentiment_dir), out=tmp_path / "art",
                      recipe=recipe, progress=False)
    m = result.manifest
    assert m["deploy"]["model"] == "model/model.ort"
    scored = {s["file"]: s for s in m["deployed_scores"]}
    dev = load_dataset(str(tiny_sentiment_dir)).split("dev")
    clf = Classifier.load(tmp_path / "art", threshold=0)
    names = [load_dataset(str(tiny_sentiment_dir)).label_names[y] for y in dev.labels]
    expected = float(np.mean([p.label == n for p, n in zip(clf.predict(dev.texts), names)]))
    assert scored["model/model.ort"]["dev_accuracy"] == pytest.approx(expected)
    assert scored["model/model.ort"]["n"] == len(dev)
    s = m["summary"]
    assert s["final_dev_accuracy"] == scored["model/model.ort"]["dev_accuracy"]
    assert s["final_dev_accuracy_file"] == "model/model.ort"
    assert "(`model/model.ort`)" in (tmp_path / "art" / "report.md").read_text()


def test_the_accuracy_budget_holds_end_to_end(tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    """quantize may spend only what the earlier stages left of the target's budget (the drop is the shipped
    model's against the fine-tuned one), and never more than its own cap."""
    from types import SimpleNamespace

    from edgebert.deploy import accuracy_budget_left as _budget_left
    from edgebert.stages.quantize import _stage_budget

    target = SimpleNamespace(budgets=SimpleNamespace(accuracy_drop=1.0))
    stages = [{"metrics": {"dev": {"accuracy": 0.90}}}, {"metrics": {"dev_accuracy": 0.896}}]
    assert _budget_left(stages, target) == pytest.approx(0.6)
    assert _budget_left([], target) is None
    assert _stage_budget(1.0, 0.6) == 0.6 and _stage_budget(0.3, 0.6) == 0.3
    assert _stage_budget(1.0, -0.5) == 0.0 and _stage_budget(1.0, None) == 1.0
    recipe = write_recipe(tmp_path / "r.yaml", [{"kind": "finetune"},  # trained head: dev scored, not re-trained
                                                {"kind": "export-onnx", "fuse": False},
                                                {"kind": "quantize", "mode": "int8-dynamic"}])
    result = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "art",
                      recipe=recipe, progress=False)
    quant = result.manifest["stages"][-1]["metrics"]
    assert quant["budget_left_before"] is not None
    assert quant["budget_points"] == pytest.approx(min(1.0, max(0.0, quant["budget_left_before"])))
    # share_target_budget: false (the albert recipe's): the stage's own cap against its input, whatever is left
    own = write_recipe(tmp_path / "own.yaml", [{"kind": "finetune"}, {"kind": "export-onnx", "fuse": False},
                                               {"kind": "quantize", "mode": "int8-dynamic", "max_accuracy_drop": 5.0,
                                                "share_target_budget": False}])
    result = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "own",
                      recipe=own, progress=False)
    assert result.manifest["stages"][-1]["metrics"]["budget_points"] == 5.0


# -- refused before any stage runs; a full disk; permissions -------------------------------------------

def _no_stage_runs(monkeypatch):
    for kind in ("finetune", "export-onnx"):
        stage = stage_registry.get_stage(kind)
        monkeypatch.setitem(stage_registry.STAGES, kind, stage_registry.StageDef(
            **{**stage.__dict__, "fn": lambda *a, **k: pytest.fail("a stage ran")}))


def test_a_token_cap_above_the_models_position_table_fails_before_any_work(tiny_classifier_dir, tiny_sentiment_dir,
                                                                           tmp_path, monkeypatch):
    from edgebert.targets import targets_dir

    _no_stage_runs(monkeypatch)
    profile = yaml.safe_load((targets_dir() / "cpu.yaml").read_text(encoding="utf-8"))
    profile.update(name="long", shapes={**profile["shapes"], "max_length": 256})
    (tmp_path / "long.yaml").write_text(yaml.safe_dump(profile), encoding="utf-8")
    recipe = write_recipe(tmp_path / "r.yaml", [{"kind": "export-onnx", "fuse": False}])
    with pytest.raises(ConfigError, match=r"target 'long' \(.*long.yaml\): shapes.max_length is 256, above the 128 "
                                          r"tokens the model takes .*max_position_embeddings 128.*Use 128 or less"):
        compress(str(tiny_classifier_dir), str(tmp_path / "long.yaml"), data=str(tiny_sentiment_dir),
                 out=tmp_path / "o", recipe=recipe, progress=False)
    recipe = write_recipe(tmp_path / "r.yaml", [{"kind": "export-onnx", "fuse": False, "max_length": 512}])
    with pytest.raises(ConfigError, match=r"recipe 'r': stage 1 \(export-onnx\): max_length is 512, above the 128"):
        compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "o", recipe=recipe,
                 progress=False)
    assert not (tmp_path / "o").exists()


def test_training_data_with_one_label_fails_before_any_work(tiny_bert_dir, tmp_path, monkeypatch):
    from conftest import POSITIVE

    from edgebert.errors import DataError

    _no_stage_runs(monkeypatch)
    train = tmp_path / "train.csv"
    train.write_text("text,label\n" + "".join(f"{t},positive\n" for t in POSITIVE * 2))
    recipe = write_recipe(tmp_path / "r.yaml", [{"kind": "finetune"}, {"kind": "export-onnx", "fuse": False}])
    with pytest.raises(DataError, match=rf"{train}: every one of the \d+ training rows has the label 'positive'"):
        compress(str(tiny_bert_dir), "cpu", data=str(train), out=tmp_path / "o", recipe=recipe, progress=False)
    assert not (tmp_path / "o").exists()


def test_an_unwritable_out_fails_before_the_model_is_read(tiny_classifier_dir, tiny_sentiment_dir, read_only_dir,
                                                          monkeypatch):
    from edgebert import models
    from edgebert.errors import OutputNotWritableError

    monkeypatch.setattr(models, "load_config", lambda *a, **k: pytest.fail("the model was read"))
    with pytest.raises(OutputNotWritableError, match=rf"Cannot write to '{read_only_dir}'.*Choose another --out"):
        compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=read_only_dir / "art",
                 progress=False)


def test_a_full_disk_in_a_stage_is_an_error_and_the_run_resumes(tiny_classifier_dir, tiny_sentiment_dir, tmp_path,
                                                                monkeypatch):
    import transformers.modeling_utils
    from click.testing import CliRunner
    from safetensors import SafetensorError

    from conftest import assert_clean_error
    from edgebert.cli import main

    def full(*args, **kwargs):
        raise SafetensorError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, '
                              'message: "No space left on device" })')

    real = transformers.modeling_utils.safe_save_file
    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", full)
    stages = [{"kind": "finetune", "when": "always", "epochs": 1, "batch_size": 8, "seed": 0},
              {"kind": "export-onnx", "fuse": False}]
    recipe = write_recipe(tmp_path / "r.yaml", stages)
    out = tmp_path / "art"
    r = CliRunner().invoke(main, ["compress", "--model", str(tiny_classifier_dir), "--data", str(tiny_sentiment_dir),
                                  "--recipe", str(recipe), "--out", str(out), "--quiet"])
    assert_clean_error(r, f"No space left on the device while writing '{out.resolve() / 'stages' / '01-finetune'}'")
    assert r.exit_code == 2 and r.output.count("Error:") == 1
    assert [p.name for p in (out / "stages").iterdir()] == []  # nothing half-written
    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", real)
    result = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe,
                      progress=False)  # the same command, once there is space, runs without --overwrite
    assert result.ran == ["01-finetune", "02-export-onnx"]


def test_artifact_files_follow_the_umask(tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    import stat

    recipe = write_recipe(tmp_path / "r.yaml", [{"kind": "finetune", "when": "always", "epochs": 1, "batch_size": 8},
                                                {"kind": "export-onnx", "fuse": False}])
    out = tmp_path / "art"
    old = os.umask(0o022)
    try:
        compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out, recipe=recipe, progress=False)
    finally:
        os.umask(old)
    wrong = {str(p.relative_to(out)): oct(stat.S_IMODE(p.stat().st_mode)) for p in [out, *out.rglob("*")]
             if stat.S_IMODE(p.stat().st_mode) != (0o755 if p.is_dir() else 0o644)}
    assert wrong == {}
    assert (out / "model" / "model.onnx").is_file() and (out / "stages" / "01-finetune" / "model").is_dir()
    deploy = json.loads((out / "manifest.json").read_text())["deploy"]
    assert (deploy["max_length"], deploy["model_max_length"]) == (128, 128)


def test_the_stage_cache_never_fails_a_run_and_data_in_memory_is_identified_by_content(
        tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    """A cache that cannot be written (here a file in its place) is said and skipped; two in-memory datasets
    with the same labels and sizes but other texts are other data (they must not share cached stages)."""
    import dataclasses

    from edgebert.data import load_dataset
    from edgebert.data.dataset import Split
    from edgebert.cache import data_identity as _data_identity

    recipe = write_recipe(tmp_path / "r.yaml", [{"kind": "export-onnx", "fuse": False}])
    (tmp_path / "not-a-folder").write_text("x")
    said = []
    result = compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "a",
                      recipe=recipe, progress=False, cache=tmp_path / "not-a-folder", log=said.append)
    assert result.ran == ["01-export-onnx"] and any("not filled" in line for line in said), said
    ds = load_dataset(str(tiny_sentiment_dir))
    train = ds.split("train")
    other = dataclasses.replace(ds, files={}, splits={**ds.splits, "train": Split(
        texts=[t + " indeed" for t in train.texts], labels=train.labels)})
    same_shape = dataclasses.replace(ds, files={})
    assert _data_identity(other) != _data_identity(same_shape)


def test_the_shipped_file_is_scored_at_the_targets_token_cap(tiny_classifier_dir, tiny_sentiment_dir, tmp_path,
                                                             monkeypatch):
    """score_deployed loads the artifact by its own deploy block (written first) at the target's max_length."""
    from edgebert.runtime import Classifier
    from edgebert.targets import targets_dir

    target = tmp_path / "short.yaml"
    target.write_text((targets_dir() / "cpu.yaml").read_text().replace("name: cpu", "name: short")
                      .replace("max_length: 128", "max_length: 32"))
    loads = []
    real = Classifier.load.__func__

    def spy(cls, path, **kw):
        clf = real(cls, path, **kw)
        loads.append((clf.max_length, clf.layout.model.name))
        return clf

    monkeypatch.setattr(Classifier, "load", classmethod(spy))
    recipe = write_recipe(tmp_path / "r.yaml", [{"kind": "export-onnx", "fuse": False}])
    compress(str(tiny_classifier_dir), str(target), data=str(tiny_sentiment_dir), out=tmp_path / "a",
             recipe=recipe, progress=False)
    assert loads and loads[-1] == (32, "model.onnx")
