"""edgebert compress / edgebert targets through the CLI, and the real-model check on MiniLM."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from click.testing import CliRunner

from edgebert.cli.main import main
from tests.conftest import assert_clean_error


def run(*args):
    return CliRunner().invoke(main, list(args))


def test_targets_lists_one_line_each():
    result = run("targets")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    names = [line.split()[0] for line in lines]
    assert {"cpu", "cpu-arm64", "server-gpu", "jetson", "mobile"} <= set(names)
    assert all("recipe" in line for line in lines)


def test_targets_lists_the_valid_profiles_beside_a_broken_one(tmp_path, monkeypatch):
    import shutil

    from edgebert.targets import targets_dir

    for name in ("cpu", "mobile"):
        shutil.copy(targets_dir() / f"{name}.yaml", tmp_path / f"{name}.yaml")
    (tmp_path / "broken.yaml").write_text("name: broken\nruntime: abacus\n", encoding="utf-8")
    norecipe = (tmp_path / "mobile.yaml").read_text().replace("name: mobile", "name: norecipe")
    norecipe = re.sub(r"(?m)^recipe: .*$", "recipe: nosuch", norecipe)
    (tmp_path / "norecipe.yaml").write_text(norecipe, encoding="utf-8")
    monkeypatch.setenv("EDGEBERT_TARGETS", str(tmp_path))
    result = run("targets")
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "2 target profile(s)" in result.output and "broken.yaml" in result.output and "nosuch" in result.output
    listed = [line.split()[0] for line in result.stdout.strip().splitlines()]
    assert listed == ["cpu", "mobile"]


def test_targets_show_prints_profile_and_recipe():
    result = run("targets", "show", "jetson")
    assert result.exit_code == 0, result.output
    body = yaml.safe_load(result.output)
    assert body["name"] == "jetson" and body["runtime"] == "tensorrt" and body["shapes"]["max_length"] == 128
    assert "build-tensorrt" in result.output


def test_unknown_target_is_a_clean_error():
    assert_clean_error(run("targets", "show", "jetson-nano"), "Unknown target 'jetson-nano'", "cpu", "mobile")
    assert_clean_error(run("compress", "--target", "tpu"), "Unknown target 'tpu'", "edgebert targets")


def test_print_recipe_shows_resolved_stages():
    result = run("compress", "--target", "cpu", "--print-recipe")
    assert result.exit_code == 0, result.output
    body = yaml.safe_load(result.output)
    kinds = [s["kind"] for s in body["stages"]]
    assert kinds == ["finetune", "prune", "distill", "export-onnx", "quantize"]
    assert body["stages"][-1]["max_accuracy_drop"] == 1.0  # the target's budget, resolved
    seeded = yaml.safe_load(run("compress", "--target", "cpu", "--print-recipe", "--seed", "3").output)
    assert [s.get("seed") for s in seeded["stages"]] == [None if s.get("seed") is None else s["seed"] + 3
                                                          for s in body["stages"]]  # as the run would use them
    assert seeded["stages"][1]["seed"] == body["stages"][1]["seed"] + 3  # prune has a seed
    # distillation's rates filled in for --model (the embedded MiniLM: compact BERT)
    assert (body["stages"][2]["learning_rate"], body["stages"][2]["head_learning_rate"]) == (1e-4, 1e-4)


def test_printed_recipe_runs_as_a_recipe_file(tmp_path):
    from edgebert import models
    from edgebert.pipeline import plan

    result = run("compress", "--target", "jetson", "--print-recipe")
    assert result.exit_code == 0, result.output
    assert result.output.startswith("# recipe 'jetson' resolved for target 'jetson'")
    saved = tmp_path / "jetson.yaml"
    saved.write_text(result.output, encoding="utf-8")
    dump = lambda p: [s.model_dump(mode="json") for s in p.stages]  # noqa: E731
    # read back, it is the recipe compress runs on the default model (MiniLM), defaults filled in
    assert dump(plan("jetson", saved)) == dump(plan("jetson").for_model(models.load_config("minilm")))
    assert next(s for s in plan("jetson", saved).stages if s.kind == "distill").learning_rate == 1e-4
    seeded = run("compress", "--target", "jetson", "--print-recipe", "--seed", "2").output
    assert "run this file with --seed 0" in seeded


def test_print_recipe_without_a_readable_model_leaves_model_defaults_unset(tmp_path):
    result = run("compress", "--target", "mobile", "--print-recipe", "--model", str(tmp_path / "missing"))
    assert result.exit_code == 0, result.output
    assert "learning rates are left unset" in result.stderr and "does not exist" in result.stderr
    distill = next(s for s in yaml.safe_load(result.stdout)["stages"] if s["kind"] == "distill")
    assert distill["learning_rate"] is None and distill["head_learning_rate"] is None


def test_list_stages():
    result = run("compress", "--list-stages")
    assert result.exit_code == 0
    listed = [line.split()[0] for line in result.output.strip().splitlines()]
    from edgebert.stages.registry import stage_kinds

    assert listed == stage_kinds() and listed[0] == "finetune"  # pipeline order, every kind once
    assert listed.index("prune") < listed.index("distill") < listed.index("export-onnx") < listed.index("export-mobile")


def test_bad_recipe_is_a_clean_error_before_work(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(yaml.safe_dump({"name": "r", "stages": [{"kind": "export-onnx"}, {"kind": "prune"}]}))
    assert_clean_error(run("compress", "--recipe", str(recipe), "--out", str(tmp_path / "o")), "comes after")
    assert not (tmp_path / "o").exists()
    recipe.write_text(yaml.safe_dump({"name": "r", "stages": [{"kind": "prune", "ffn": 1.2}, {"kind": "export-onnx"}]}))
    assert_clean_error(run("compress", "--recipe", str(recipe)), "ffn", "less than 1")
    recipe.write_text(yaml.safe_dump({"name": "r", "stages": [{"kind": "lowrank"}]}))
    assert_clean_error(run("compress", "--recipe", str(recipe)), "Unknown stage 'lowrank'", "prune", "sparsify")


def test_output_of_another_kind_is_refused(tmp_path):
    (tmp_path / "keep.txt").write_text("x")
    assert_clean_error(run("compress", "--out", str(tmp_path), "--quiet"), "not an edgebert compress artifact")
    assert (tmp_path / "keep.txt").read_text() == "x"


def test_missing_model_is_a_clean_error(tmp_path):
    assert_clean_error(run("compress", "--model", str(tmp_path / "nope"), "--out", str(tmp_path / "o")),
                       "does not exist")


@pytest.mark.slow
def test_minilm_every_stage_offline(tmp_path, minilm_dir):
    """The real-model check: the embedded MiniLM through every stage, from the CLI, offline."""
    recipe = tmp_path / "all.yaml"
    stages = [
        {"kind": "finetune", "epochs": 2},
        {"kind": "prune", "layers": 2, "heads": 0.25, "ffn": 0.25, "samples": 64},
        {"kind": "distill", "epochs": 1},
        {"kind": "export-onnx", "fuse": False},
        {"kind": "quantize", "mode": "int8-static", "symmetric": True, "per_channel": True,
         "calibration_samples": 64},
        {"kind": "build-tensorrt", "precision": "int8"},
        {"kind": "export-torchscript"},
        {"kind": "export-pytorch", "dtype": "float16"},
        {"kind": "export-mobile"},
    ]
    recipe.write_text(yaml.safe_dump({"name": "all", "stages": stages}))
    out = tmp_path / "art"
    result = run("compress", "--recipe", str(recipe), "--out", str(out), "--quiet")
    assert result.exit_code == 0, result.output
    manifest = json.loads((out / "manifest.json").read_text())
    by_kind = {s["kind"]: s for s in manifest["stages"]}
    prune = by_kind["prune"]["metrics"]
    assert len(prune["report"]["layers_kept"]) == 4 and prune["parameters_after"] < 0.9 * prune["parameters_before"]
    assert by_kind["export-onnx"]["validation"]["max_abs_logit_diff"] < 1e-3
    assert by_kind["export-torchscript"]["validation"]["max_abs_logit_diff"] < 1e-3
    assert by_kind["export-pytorch"]["validation"]["label_agreement"] >= 0.99
    assert by_kind["export-mobile"]["validation"]["label_agreement"] == 1.0
    q = by_kind["quantize"]["metrics"]
    assert q["nodes_quantized"] > 20 and q["within_budget"] in (True, False)
    files = sorted(p.name for p in (out / "model").iterdir())
    assert {"model.ort", "model.onnx", "model.pt", "build_engine.sh", "model.safetensors"} <= set(files)
    assert "--int8" in (out / "model" / "build_engine.sh").read_text()
    assert manifest["summary"]["final_dev_accuracy"] >= 0.8  # the demo intents are easy
    assert "| 2 | prune |" in result.output


def test_offline_hub_id_names_what_to_do_instead(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    result = run("compress", "--model", "albert-base-v2", "--target", "jetson", "--out", str(tmp_path / "o"))
    assert_clean_error(result, "albert-base-v2", "not in the local Hugging Face cache", "minilm")
    assert not (tmp_path / "o").exists()


def test_unsupported_architecture_fails_before_work(tmp_path, tiny_tokenizer_dir):
    from transformers import GPT2Config, GPT2ForSequenceClassification

    model_dir = tmp_path / "gpt2"
    GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=64, num_labels=2)
                                  ).save_pretrained(model_dir)
    assert_clean_error(run("compress", "--model", str(model_dir), "--out", str(tmp_path / "o")), "gpt2")
    assert not (tmp_path / "o").exists()


def test_a_truncated_weights_file_is_refused_before_the_folder_is_claimed(tiny_classifier_dir, tiny_sentiment_dir,
                                                                           tmp_path):
    """A broken copy of a model is reported (one line, exit 2) before compress creates its output folder, so
    the same command with the repaired model then runs into that folder without --overwrite."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_classifier_dir, model)
    weights = model / "model.safetensors"
    whole = weights.read_bytes()
    weights.write_bytes(whole[: len(whole) // 2])
    out = tmp_path / "art"
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\nstages:\n  - kind: export-onnx\n    fuse: false\n", encoding="utf-8")
    args = ("compress", "--model", str(model), "--data", str(tiny_sentiment_dir), "--out", str(out),
            "--recipe", str(recipe))
    assert_clean_error(run(*args), "model.safetensors", "truncated")
    assert not out.exists()
    weights.write_bytes(whole)
    result = run(*args)
    assert result.exit_code == 0, result.output


_HEAVY_PROBE = """
import json, sys
from edgebert.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(json.dumps({"code": code, "heavy": sorted(m for m in ("torch", "transformers") if m in sys.modules)}))
"""


def _heavy_imports(*args, **env):
    """Run ``edgebert ARGS`` in a fresh process; (exit code, stdout, stderr, heavy modules it imported)."""
    import os
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-c", _HEAVY_PROBE, *args], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=600)
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    return report["code"], proc.stdout, proc.stderr, report["heavy"]


def test_offline_hub_model_fails_before_heavy_imports(tmp_path):
    """Offline, an uncached hub id is refused before torch / transformers are imported (they alone
    took 20-30 s on a small machine before the check ran)."""
    code, _, err, heavy = _heavy_imports("compress", "--model", "edgebert-tests/never-cached", "--out",
                                         str(tmp_path / "o"), "--quiet", HF_HUB_OFFLINE="1")
    assert code == 2, err
    assert "not in the local Hugging Face cache and HF_HUB_OFFLINE is set" in err and "Traceback" not in err
    assert heavy == []
    assert not (tmp_path / "o").exists()


def test_print_recipe_reads_the_model_config_without_heavy_imports():
    code, out, err, heavy = _heavy_imports("compress", "--target", "mobile", "--print-recipe")
    assert code in (0, None), err
    distill = next(s for s in yaml.safe_load(out.rsplit("\n{", 1)[0])["stages"] if s["kind"] == "distill")
    assert distill["learning_rate"] == 1e-4  # filled in for MiniLM from its config.json
    assert heavy == []
