"""compress --search: the chain of shapes, the binary search along it, and a whole search on the tiny model."""

from __future__ import annotations

import json

import pytest
import yaml
from click.testing import CliRunner

from edgebert.errors import ConfigError
from edgebert.search import Shape, build_chain, candidate_stages, kl_divergence, neighbours, next_candidate
from edgebert.targets import SearchSpace


def test_neighbours_advance_one_lever_and_keep_a_layer():
    space = SearchSpace(layers=[0, 1, 2], heads=[0.0, 0.5], ffn=[0.0, 0.25, 0.5])
    assert neighbours(Shape(), space, n_layers=6) == [Shape(1, 0, 0), Shape(0, 0.5, 0), Shape(0, 0, 0.25)]
    assert neighbours(Shape(2, 0.5, 0.5), space, n_layers=6) == []
    # a 2-layer model can drop at most 1
    assert neighbours(Shape(1, 0, 0), space, n_layers=2) == [Shape(1, 0.5, 0), Shape(1, 0, 0.25)]


def test_chain_takes_the_least_kl_per_ms_saved_and_stops_when_nothing_saves_enough():
    # made-up latency table: dropping a layer saves most per KL, FFN next, heads save nothing
    def probe(s: Shape):
        ms = 10.0 - 3 * s.layers - 4 * s.ffn
        kl = 0.01 * s.layers + 0.1 * s.ffn + 0.5 * s.heads
        return {"latency_ms": ms, "kl": kl}

    space = SearchSpace(layers=[0, 1, 2], heads=[0.0, 0.5], ffn=[0.0, 0.5], min_gain=0.05)
    chain = build_chain(probe, space, n_layers=6)
    assert chain == [Shape(), Shape(1, 0, 0), Shape(2, 0, 0), Shape(2, 0, 0.5)]
    ms = [probe(s)["latency_ms"] for s in chain]
    assert ms == sorted(ms, reverse=True)


def test_binary_search_finds_the_fastest_passing_index_in_log_steps():
    for n in range(1, 12):
        for first_fail in range(1, n + 1):  # chain index 0 passes; indices >= first_fail fail
            lo, hi, steps = 0, n, 0
            while (mid := next_candidate(lo, hi)) is not None:
                steps += 1
                lo, hi = (mid, hi) if mid < first_fail else (lo, mid)
            assert lo == first_fail - 1
            assert steps <= max(1, (n - 1).bit_length())


def test_kl_is_zero_for_equal_logits_and_positive_otherwise():
    import numpy as np

    a = np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]])
    assert kl_divergence(a, a) == pytest.approx(0.0, abs=1e-12)
    assert kl_divergence(a, a[:, ::-1]) > 0.1


def test_candidate_stages_replace_the_prune_shape_or_drop_prune_and_distill():
    from edgebert.plan import plan

    stages = plan("cpu").stages
    i = [s.kind for s in stages].index("prune")
    base = candidate_stages(stages, i, Shape())
    assert [s.kind for s in base] == [s.kind for s in stages if s.kind not in ("prune", "distill")]
    shaped = candidate_stages(stages, i, Shape(1, 0.25, 0.5))
    assert shaped[i].layers == 1 and shaped[i].samples == stages[i].samples


def test_search_space_levels_are_checked():
    with pytest.raises(ValueError, match="start at 0"):
        SearchSpace(heads=[0.25, 0.5])
    with pytest.raises(ValueError, match="increase"):
        SearchSpace(ffn=[0.0, 0.5, 0.25])
    with pytest.raises(ValueError, match="fractions"):
        SearchSpace(heads=[0.0, 1.0])


def test_a_recipe_without_prune_is_refused_before_any_work(tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    from edgebert.search import search

    with pytest.raises(ConfigError, match="no 'prune' stage"):
        search(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "a", recipe="quick")
    assert not (tmp_path / "a").exists()


def _search_recipe(tmp_path):
    recipe = tmp_path / "searchable.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "searchable",
        "stages": [{"kind": "prune", "samples": 16}, {"kind": "distill", "epochs": 1, "augment": 0},
                   {"kind": "export-onnx"}, {"kind": "quantize", "mode": "int8-dynamic"}],
        "search": {"layers": [0, 1], "heads": [0.0, 0.5], "ffn": [0.0, 0.5], "min_gain": 0.0,
                   "latency_rows": 8, "latency_rounds": 1, "proxy_rows": 16},
    }))
    return recipe


def test_search_end_to_end_on_the_tiny_model(tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    from edgebert.cli.main import main as cli

    out = tmp_path / "art"
    res = CliRunner().invoke(cli, ["compress", "--model", str(tiny_classifier_dir), "--data", str(tiny_sentiment_dir),
                                   "--recipe", str(_search_recipe(tmp_path)), "--out", str(out), "--search",
                                   "--search-budget", "30", "--quiet"])
    assert res.exit_code == 0, res.output
    manifest = json.loads((out / "manifest.json").read_text())
    block = manifest["search"]
    chain = block["chain"]
    assert chain[0] == Shape().name and len(block["table"]) >= len(chain)
    # every shape in the chain was timed, and the chain gets faster
    timed = {row["shape"]["name"]: row for row in block["table"]}
    ms = [timed[name]["latency_ms"] for name in chain]
    assert all(b <= a for a, b in zip(ms, ms[1:]))
    # the base and at most log2(len(chain)) + 1 candidates were trained; the choice is the fastest that passed
    cands = block["candidates"]
    assert cands[0]["chain_index"] == 0 and len(cands) <= 1 + max(1, (len(chain) - 1).bit_length())
    passing = [c for c in cands if c["passed"]]
    chosen = block["chosen"]
    assert cands[0]["passed"], cands[0]  # the unpruned int8 model of a task it learned perfectly
    assert chosen["measured_ms"] == min(c["measured_ms"] for c in passing)  # the fastest that passed, as measured
    assert all(c["teacher_dev_accuracy"] == block["teacher_dev_accuracy"] for c in cands)
    assert chosen["test_accuracy"] is not None and 0 <= chosen["test_accuracy"] <= 1
    # the artifact in OUT is the chosen shape's: its prune stage (if any) has the chosen levels
    kinds = [s["kind"] for s in manifest["stages"]]
    if chosen["chain_index"] == 0:
        assert "prune" not in kinds
    else:
        prune = next(s for s in manifest["stages"] if s["kind"] == "prune")["config"]
        assert (prune["layers"] or 0, prune["heads"], prune["ffn"]) == (
            chosen["layers_dropped"], chosen["heads_removed"], chosen["ffn_removed"])
    for c in cands:
        assert (tmp_path / "art" / "search").is_dir() and json.loads(
            (out / "search" / c["folder"].split("/search/")[-1] / "manifest.json").read_text())["status"] == "complete"
    assert "Chosen:" in res.output
    assert (out / block["plot"]).stat().st_size > 10_000
    # a second run resumes: nothing is trained again
    again = CliRunner().invoke(cli, ["compress", "--model", str(tiny_classifier_dir), "--data", str(tiny_sentiment_dir),
                                     "--recipe", str(_search_recipe(tmp_path)), "--out", str(out), "--search",
                                     "--quiet"])
    assert again.exit_code == 0, again.output
    assert ": running" not in again.output.replace("search: ", "")


def test_search_budget_needs_search(tiny_classifier_dir, tmp_path):
    from edgebert.cli.main import main as cli

    res = CliRunner().invoke(cli, ["compress", "--model", str(tiny_classifier_dir), "--search-budget", "5",
                                   "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "pass --search too" in res.output
    assert not (tmp_path / "x").exists()


def test_search_refuses_a_folder_of_other_files_before_any_work(tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    from edgebert.errors import OutputExistsError
    from edgebert.search import search

    (tmp_path / "art").mkdir()
    (tmp_path / "art" / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        search(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "art",
               recipe=_search_recipe(tmp_path))
    assert sorted(p.name for p in (tmp_path / "art").iterdir()) == ["notes.txt"]


def test_a_spent_budget_keeps_the_base_and_says_why(tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    from edgebert.search import search

    res = search(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "art",
                 recipe=_search_recipe(tmp_path), budget_minutes=1e-4, progress=False)
    assert [c["chain_index"] for c in res.search["candidates"]] == [0]
    assert res.search["chosen"]["chain_index"] == 0
    if len(res.search["chain"]) > 1:  # a candidate was due, and the budget stopped it
        assert res.search["stopped"].startswith("budget")
    kinds = [s["kind"] for s in res.manifest["stages"]]
    assert "prune" not in kinds and "distill" not in kinds


def test_recipes_carry_a_validated_search_block_and_print_recipe_keeps_it(tmp_path):
    from edgebert.plan import plan

    cpu = plan("cpu")
    assert cpu.search.layers == [0, 1, 2, 3] and cpu.search.heads[-1] == 0.75
    printed = tmp_path / "cpu.yaml"
    printed.write_text(cpu.to_yaml())
    assert plan("cpu", printed).search == cpu.search  # --print-recipe's file runs the same search
    bad = tmp_path / "bad.yaml"
    for search, problem in (({"speed": 2}, "search.speed: unknown key"), ({"heads": [0.5]}, "start at 0")):
        bad.write_text(yaml.safe_dump({"name": "bad", "stages": [{"kind": "prune"}, {"kind": "export-onnx"}],
                                       "search": search}))
        with pytest.raises(ConfigError, match=problem):
            plan("cpu", bad)


def test_without_the_shared_cache_the_final_run_reuses_the_chosen_candidate(tiny_classifier_dir, tiny_sentiment_dir,
                                                                            tmp_path):
    """--no-cache: the search keeps a private stage cache under OUT/search/, so the artifact in OUT is the chosen
    candidate's own stages, not a second training run."""
    from edgebert.search import search

    res = search(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=tmp_path / "art",
                 recipe=_search_recipe(tmp_path), cache=False, progress=False)
    assert (tmp_path / "art" / "search" / "stage-cache").is_dir()
    assert not (tmp_path / ".edgebert-stage-cache").exists()
    chosen = json.loads((tmp_path / "art" / "search" / res.search["chosen"]["folder"].split("/search/")[-1]
                         / "manifest.json").read_text())
    assert [s["output_sha256"] for s in res.manifest["stages"]] == [s["output_sha256"] for s in chosen["stages"]]
