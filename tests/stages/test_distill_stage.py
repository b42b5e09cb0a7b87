"""The distill stage: its config (the recipe's distill entry), the learning rates it keys, run through
the pipeline."""

import pydantic
import pytest

from conftest import run_stage

from edgebert.config import build_config
from edgebert.errors import ConfigError
from edgebert.stages.distill import DistillConfig, resolve_learning_rates

TINY = {"batch_size": 8, "learning_rate": 3e-3, "head_learning_rate": 3e-3, "patience": 0}
RECIPE = [{"kind": "prune", "layers": 1, "samples": 16}, {"kind": "distill", "epochs": 1, **TINY},
          {"kind": "export-onnx"}]


def test_config_defaults_and_validation():
    cfg = DistillConfig()
    assert (cfg.kind, cfg.temperature, cfg.alpha, cfg.hidden_weight, cfg.layer_map) == ("distill", 2.0, 0.5, 0.0, None)
    assert DistillConfig.model_validate_json(cfg.model_dump_json()) == cfg
    assert all(f.description for name, f in DistillConfig.model_fields.items() if name != "kind")
    with pytest.raises(pydantic.ValidationError, match="alpha"):
        DistillConfig(alpha=1.5)
    for bad in ({"alpha": -0.1}, {"temperature": 0}, {"hidden_weight": -1}, {"layer_map": [-1]},
                {"layer_map": []}, {"epochs": 0}, {"teacher": "x"}):
        with pytest.raises(ConfigError):
            build_config(DistillConfig, bad)
    with pytest.raises(ConfigError, match="select"):
        build_config(DistillConfig, {"select": "loss"})


def test_unset_learning_rates_resolve_per_model_family():
    from transformers import AlbertConfig, BertConfig

    minilm = BertConfig(hidden_size=384, num_attention_heads=12, intermediate_size=1536)
    albert = AlbertConfig()
    unset = DistillConfig(epochs=5, select="kl")
    resolved = resolve_learning_rates(unset, minilm)
    assert (resolved.learning_rate, resolved.head_learning_rate) == (1e-4, 1e-4)
    assert (resolved.epochs, resolved.select) == (5, "kl") and unset.learning_rate is None  # a copy
    assert resolve_learning_rates(unset, albert).learning_rate == 1e-5
    # an explicit encoder rate: the head follows it (the head is trained already), the family does not count
    only_body = resolve_learning_rates(DistillConfig(learning_rate=2e-5), minilm)
    assert (only_body.learning_rate, only_body.head_learning_rate) == (2e-5, 2e-5)
    explicit = DistillConfig(learning_rate=1e-4, head_learning_rate=1e-3)
    assert resolve_learning_rates(explicit, albert) is explicit
    # what the pipeline keys: unset rates resolved for MiniLM dump as the same rates written out
    assert resolved.model_dump(mode="json") == DistillConfig(
        epochs=5, select="kl", learning_rate=1e-4, head_learning_rate=1e-4).model_dump(mode="json")


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_stage_runs_and_is_recorded(arch, request, tmp_path):
    rec, _files, _out = run_stage(request, tmp_path, "distill", RECIPE, arch)
    assert rec["metrics"]["report"]["history"] and "teacher_dev_accuracy" in rec["metrics"]
