"""Helpers of the benchmark scripts that decide what a published record says."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture
def cpu_seeds(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCHMARKS))  # the scripts import each other as top-level modules
    return importlib.import_module("cpu_seeds")


def _row(seed, teacher_acc, sha=None, drop=0.5):
    row = {"seed": seed, "stage_seeds": {"prune": seed, "distill": seed}, "layer_map": [0, 1, 2, 5],
           "best_epoch": 5, "dev_accuracy": 0.85, "dev_agreement": 0.93, "test_accuracy": teacher_acc - drop / 100,
           "drop_points": drop, "test_agreement": 0.94, "distill_seconds": 100.0, "n": 1821,
           "teacher_test_accuracy": teacher_acc}
    if sha:
        row.update(teacher_sha256=sha, host="host B")
    return row


def test_seed_record_says_when_rows_come_from_different_teachers(cpu_seeds):
    # rows 0-1 made before teacher hashes were recorded; 3-4 from a re-made teacher (another sha256)
    rows = [_row(0, 0.8896), _row(1, 0.8896), _row(3, 0.8902, "b" * 64), _row(4, 0.8902, "b" * 64, drop=1.2)]
    assert cpu_seeds.teacher_ids(rows) == [0, 0, 1, 1]
    assert cpu_seeds.teacher_ids([_row(0, 0.8896), _row(1, 0.8896, "a" * 64)]) == [0, 0]  # same accuracy, no sha
    assert cpu_seeds.teacher_ids([_row(0, 0.8896, "a" * 64), _row(1, 0.8896, "c" * 64)]) == [0, 1]  # shas differ
    record = {"dataset": "sst2", "command": "python benchmarks/cpu_seeds.py", "date": "d", "host": "h",
              "recipe": "r", "rows": rows, "summary": cpu_seeds.summary(rows), "shuffle": "epoch_seed"}
    text = cpu_seeds.markdown(record)
    assert "distilled from 2 different fine-tuned fp32 models" in text
    assert "| A (0.8896) |" in text and "| B (0.8902, host B) |" in text
    assert "met by 3 of 4 seeds" in text
    one = cpu_seeds.markdown({**record, "rows": rows[:2], "summary": cpu_seeds.summary(rows[:2])})
    assert "the teacher): test accuracy 0.8896" in one and "teacher |" not in one


def _minilm_config():
    from transformers import BertConfig

    # all-MiniLM-L6-v2's shape (its family decides distillation's default rates); no weights needed
    return BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536)


def _resolved(recipe, target_name: str):
    from edgebert.stages.registry import resolve_for_model
    from edgebert.plan import load_recipe, resolve_stages
    from edgebert.targets import load_target

    stages = resolve_stages(load_recipe(recipe)[1], load_target(target_name))
    return [s.model_dump(mode="json") for s in resolve_for_model(stages, _minilm_config())]


def test_cpu_recipe_has_the_stages_of_the_candidate_it_adopted():
    # recipes/cpu.yaml adopted benchmarks/recipes/cpu-lr1e4-kl.yaml's stages, and the published cpu
    # records re-used that candidate's stage folders (compress skips a stage only when its key, which
    # hashes the stage configs resolved for the model, matches). The cpu recipe leaves distillation's
    # rates to the family default, which for MiniLM is the candidate's 1e-4. If the recipes part, those
    # records no longer apply.
    cpu = _resolved("cpu", "cpu")
    assert cpu == _resolved(BENCHMARKS / "recipes" / "cpu-lr1e4-kl.yaml", "cpu")
    distill = next(s for s in cpu if s["kind"] == "distill")
    assert (distill["select"], distill["learning_rate"], distill["head_learning_rate"], distill["patience"]) == \
        ("kl", 1e-4, 1e-4, 0)


@pytest.mark.parametrize("recipe", ["mobile", "mobile-token-in"])
def test_mobile_recipes_prune_and_distil_as_the_cpu_recipe(recipe):
    # the mobile recipes take the cpu recipe's prune and distill stages (the size goal of a few MB needs its
    # heads and FFN pruning); resolved alike for MiniLM, they get the same stage keys, so a mobile artifact
    # built beside a cpu one (same model, data, seed, stage cache) reuses its distilled model
    cpu = {s["kind"]: s for s in _resolved("cpu", "cpu")}
    mine = {s["kind"]: s for s in _resolved(recipe, "mobile")}
    for kind in ("finetune", "prune", "distill"):
        assert mine[kind] == cpu[kind], kind


@pytest.mark.parametrize("recipe", ["jetson", "jetson-int8", "server-gpu"])
def test_layer_recipes_distil_as_the_probe_measured(recipe):
    # jetson and server-gpu drop 2 layers and distil 3 epochs; their distillation settings are
    # those of the probe benchmarks/recipes/layers2-3ep-lr1e4-kl.yaml (record
    # cpu-seeds-layers2-3ep-lr1e4-kl-sst2), for MiniLM: the same prune and distill stages.
    probe = {s["kind"]: s for s in _resolved(BENCHMARKS / "recipes" / "layers2-3ep-lr1e4-kl.yaml", "cpu")}
    target = {"jetson": "jetson", "jetson-int8": "jetson", "server-gpu": "server-gpu"}[recipe]
    mine = {s["kind"]: s for s in _resolved(recipe, target)}  # as they run on their own targets
    for kind in ("finetune", "prune", "distill"):
        assert mine[kind] == probe[kind], kind


def test_seed_records_refuse_rows_at_defaults_that_changed(cpu_seeds):
    # layers2-3ep.yaml leaves distill's rates unset: its record was made at finetune's family rates (3e-4,
    # head 3e-3); the same file now distils at 1e-4, so new seeds must not join the old rows
    import json

    config = _minilm_config()
    records = BENCHMARKS / "results"
    old = json.loads((records / "cpu-seeds-layers2-3ep-sst2.json").read_text())
    planned = cpu_seeds.planned_recipe_line(BENCHMARKS / "recipes" / "layers2-3ep.yaml", config)
    assert "learning_rate=0.0001" in planned and "learning_rate" not in old["recipe"]
    assert "reproduces at the commit" in cpu_seeds.stale_record(old, planned)
    # records whose rates were written out, or resolve to the same, may take more seeds
    for record, recipe in (("cpu-seeds-sst2.json", None), ("cpu-seeds-banking77.json", None),
                           ("cpu-seeds-layers2-3ep-lr1e4-kl-sst2.json", BENCHMARKS / "recipes" / "layers2-3ep-lr1e4-kl.yaml")):
        old = json.loads((records / record).read_text())
        assert cpu_seeds.stale_record(old, cpu_seeds.planned_recipe_line(recipe, config)) is None, record


RESULT_SCRIPTS = ("anchor_presets", "cpu_goals", "cpu_seeds", "finetune_minilm", "load_test", "lr_sweep",
                  "runtime_footprint", "torch_compile_cpu", "train_step")


def test_benchmark_scripts_write_under_runs_unless_published():
    """No script writes the committed records in benchmarks/results/ unless asked (--publish): the path is
    spelled in benchmarks/publish.py only, and every script that writes results has the option."""
    import ast

    for path in sorted(BENCHMARKS.glob("*.py")):
        if path.name == "publish.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef)) and n.body and isinstance(n.body[0], ast.Expr)}
        paths = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                 and id(n) not in docstrings and " " not in n.value and "benchmarks/results" in n.value]
        paths += [ast.unparse(n) for n in ast.walk(tree)  # ROOT / "benchmarks" / "results"
                  if isinstance(n, ast.BinOp) and isinstance(n.op, ast.Div) and isinstance(n.right, ast.Constant)
                  and n.right.value == "results" and "benchmarks" in ast.unparse(n.left)]
        assert not paths, f"{path.name} spells the results folder: {paths}"
    for name in RESULT_SCRIPTS:
        assert "add_publish_option(ap)" in (BENCHMARKS / f"{name}.py").read_text(), name
    suite = (BENCHMARKS / "suites" / "minilm_cpu.sh").read_text()
    assert "results=runs/benchmarks" in suite and "--publish" in suite


def test_walkthrough_benchmark_measures_the_artifact_it_built(monkeypatch, tmp_path):
    """examples/customer_service.md step 5 benches the artifact of step 2 (no compress of another one) and
    writes under runs/, not into the committed records."""
    import shlex

    monkeypatch.syspath_prepend(str(BENCHMARKS))
    cpu_goals = importlib.import_module("cpu_goals")
    publish = importlib.import_module("publish")
    monkeypatch.setattr(publish, "LOCAL", tmp_path / "runs" / "benchmarks")
    monkeypatch.setattr(publish, "PUBLISHED", tmp_path / "published")
    monkeypatch.setattr(cpu_goals, "ROOT", tmp_path)
    monkeypatch.setattr(cpu_goals, "RESULTS", cpu_goals.RESULTS)  # main() sets it: restored afterwards
    (tmp_path / "runs" / "models" / "minilm-banking77").mkdir(parents=True)
    art = tmp_path / "runs" / "goals" / "banking77"
    art.mkdir(parents=True)
    (art / "manifest.json").write_text("{}")
    ran = []

    class Stop(Exception):
        pass

    def sh(cmd):
        ran.append(cmd)
        if "bench" in cmd:
            raise Stop

    monkeypatch.setattr(cpu_goals, "sh", sh)
    walkthrough = (BENCHMARKS.parent / "examples" / "customer_service.md").read_text()
    line = next(ln for ln in walkthrough.splitlines() if ln.startswith("python benchmarks/cpu_goals.py"))
    argv = shlex.split(line)[2:]
    assert "--artifact" in argv and argv[argv.index("--artifact") + 1] == "runs/goals/banking77"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.argv", ["cpu_goals.py", *argv])
    with pytest.raises(Stop):
        cpu_goals.main()
    assert [c for c in ran if "compress" in c] == []
    bench = ran[-1]
    assert str(art.resolve()) in bench and bench[bench.index("--out") + 1].startswith(str(tmp_path / "runs"))
    assert cpu_goals.RESULTS == tmp_path / "runs" / "benchmarks" and not (tmp_path / "published").exists()
