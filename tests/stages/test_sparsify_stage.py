"""The sparsify stage: its config, its place in a recipe, run through the pipeline."""

import pydantic
import pytest

from conftest import run_stage

from edgebert.errors import ConfigError
from edgebert.stages.registry import check_order, parse_stage
from edgebert.stages.sparsify import SparsifyConfig

RECIPE = [{"kind": "sparsify", "sparsity": 0.5}, {"kind": "export-onnx", "fuse": False}]


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


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_stage_runs_and_is_recorded(arch, request, tmp_path):
    import numpy as np
    import onnx
    from onnx import numpy_helper

    rec, _files, out = run_stage(request, tmp_path, "sparsify", RECIPE, arch)
    m = rec["metrics"]
    assert m["encoder_sparsity"] == pytest.approx(0.5, abs=0.01)
    assert m["deflated_bytes"] < m["deflated_bytes_before"]
    assert 0 <= rec["validation"]["label_agreement"] <= 1
    # the zeros reach the exported file (dense: same tensors, half of the encoder's weights zero)
    inits = onnx.load(str(out / "model" / "model.onnx")).graph.initializer
    zeros = sum(int((numpy_helper.to_array(t) == 0).sum()) for t in inits if t.data_type == onnx.TensorProto.FLOAT)
    assert zeros >= m["report"]["zeros"]
    assert np.isfinite(m["dev_accuracy"])
