"""The sparsify stage: its config and its place in a recipe."""

import pydantic
import pytest

from edgebert.errors import ConfigError
from edgebert.stages.registry import check_order, parse_stage
from edgebert.stages.sparsify import SparsifyConfig


def test_config_and_order_are_checked():
    with pytest.raises(pydantic.ValidationError):
        SparsifyConfig(sparsity=1.0)
    with pytest.raises(ConfigError, match="sparsity"):
        parse_stage({"kind": "sparsify", "sparsity": 0}, "r.yaml")
    with pytest.raises(ConfigError, match="refill"):
        check_order([parse_stage(s, "r.yaml") for s in ({"kind": "prune", "layers": 1}, {"kind": "sparsify"},
                                               {"kind": "distill"}, {"kind": "export-onnx"})])
    check_order([parse_stage(s, "r.yaml") for s in ({"kind": "prune", "layers": 1}, {"kind": "distill"},
                                           {"kind": "sparsify"}, {"kind": "export-onnx"})])
