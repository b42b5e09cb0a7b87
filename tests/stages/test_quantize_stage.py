"""The quantize stage: its config (the recipe's quantize entry)."""

import json

import pytest

from edgebert.config import build_config
from edgebert.errors import ConfigError
from edgebert.stages.quantize import QuantizeConfig


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
