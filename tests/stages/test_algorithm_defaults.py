"""The algorithms take plain keyword arguments and the stage configs describe them: a default is written
in both places, so these tests keep the two equal (a direct call and a recipe entry that leaves a setting
out do the same), and check that every setting a stage hands on is a keyword of its algorithm."""

import inspect

import pytest

from edgebert.compress.distill import distill
from edgebert.compress.prune import prune
from edgebert.compress.quantize import quantize_onnx, quantize_with_budget
from edgebert.compress.sparsify import sparsify_
from edgebert.stages.distill import DistillConfig
from edgebert.stages.prune import PruneConfig
from edgebert.stages.quantize import QuantizeConfig
from edgebert.stages.sparsify import SparsifyConfig

# (algorithm, stage config, config fields the stage keeps to itself: not passed to the algorithm)
PAIRS = [
    (prune, PruneConfig, set()),
    (sparsify_, SparsifyConfig, set()),
    (distill, DistillConfig, set()),
    (quantize_with_budget, QuantizeConfig, {"try_per_channel", "max_length", "share_target_budget"}),
    (quantize_onnx, QuantizeConfig, {"try_per_channel", "max_length", "max_accuracy_drop", "share_target_budget"}),
]


def _keyword_defaults(fn) -> dict:
    return {name: p.default for name, p in inspect.signature(fn).parameters.items()
            if p.default is not inspect.Parameter.empty}


def _plain(value):
    return list(value) if isinstance(value, tuple) else value  # exclude=() in a signature, [] in a config


@pytest.mark.parametrize("fn, config, stage_only", PAIRS, ids=[fn.__name__ for fn, _, _ in PAIRS])
def test_algorithm_defaults_equal_the_stage_config_defaults(fn, config, stage_only):
    defaults = _keyword_defaults(fn)
    fields = set(config.model_fields) - {"kind"}
    assert fields - stage_only <= set(defaults), f"settings {fn.__name__} does not take"
    cfg = config()
    drifted = {name: (defaults[name], getattr(cfg, name)) for name in fields & set(defaults)
               if _plain(defaults[name]) != _plain(getattr(cfg, name))}
    assert not drifted, f"{fn.__name__} default != {config.__name__} default: {drifted}"
