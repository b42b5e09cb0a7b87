"""The prune stage: its config (the recipe's prune entry), run through the pipeline."""

import pytest

from conftest import run_stage

from edgebert.config import build_config
from edgebert.errors import ConfigError
from edgebert.stages.prune import PruneConfig

RECIPE = [{"kind": "prune", "heads": 0.5, "ffn": 0.5, "samples": 16}, {"kind": "export-onnx"}]


def test_config_defaults_validation_and_json_round_trip():
    cfg = PruneConfig()
    assert (cfg.kind, cfg.heads, cfg.ffn, cfg.layers, cfg.scope, cfg.samples) == ("prune", 0.0, 0.0, None, "per-layer", 256)
    assert all(f.description for f in PruneConfig.model_fields.values() if f is not PruneConfig.model_fields["kind"])
    full = PruneConfig(heads=0.25, ffn=0.5, layers=[0, 2], scope="global")
    assert PruneConfig.model_validate_json(full.model_dump_json()) == full
    assert PruneConfig(layers=2).layers == 2
    for bad in ({"heads": 1.0}, {"ffn": -0.1}, {"layers": -1}, {"layers": []}, {"layers": [1, 1]},
                {"scope": "everywhere"}, {"samples": 4}, {"head": 0.5}):
        with pytest.raises(ConfigError):
            build_config(PruneConfig, bad)


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_stage_runs_and_is_recorded(arch, request, tmp_path):
    rec, _files, _out = run_stage(request, tmp_path, "prune", RECIPE, arch)
    m = rec["metrics"]
    assert m["parameters_after"] < m["parameters_before"]
    assert rec["validation"]["n"] > 0 and 0 <= rec["validation"]["label_agreement"] <= 1
