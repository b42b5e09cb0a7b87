"""check_order's rules, pinned message by message: the order rules are checked from the stages' declared
reads / produces / requires (each stage module declares its own), never from a list of kinds, and every
rule keeps the message it had when the rules were written out by hand."""

import pytest

from edgebert.errors import ConfigError
from edgebert.stages.registry import check_order, parse_stage

CASES = [([], 'r.yaml: the recipe has no stages.'),
 ([{'kind': 'export-onnx'}, {'kind': 'prune', 'layers': 1}],
  "r.yaml: stage 2 'prune' comes after 'export-onnx' (stage 1): exports capture the model as it is then, so this "
  'change would not reach the exported files. Put finetune, prune and distill before every export.'),
 ([{'kind': 'export-torchscript'}, {'kind': 'finetune'}],
  "r.yaml: stage 2 'finetune' comes after 'export-torchscript' (stage 1): exports capture the model as it is then, "
  'so this change would not reach the exported files. Put finetune, prune and distill before every export.'),
 ([{'kind': 'export-pytorch'}, {'kind': 'sparsify'}],
  "r.yaml: stage 2 'sparsify' comes after 'export-pytorch' (stage 1): exports capture the model as it is then, so "
  'this change would not reach the exported files. Put finetune, prune and distill before every export.'),
 ([{'kind': 'prune', 'layers': 1}, {'kind': 'sparsify'}, {'kind': 'distill'}, {'kind': 'export-onnx'}],
  "r.yaml: stage 3 'distill' comes after 'sparsify' (stage 2): training would refill the zeroed weights and pruning "
  'would re-rank them. Put sparsify after finetune, prune and distill.'),
 ([{'kind': 'sparsify'}, {'kind': 'finetune'}, {'kind': 'export-onnx'}],
  "r.yaml: stage 2 'finetune' comes after 'sparsify' (stage 1): training would refill the zeroed weights and pruning "
  'would re-rank them. Put sparsify after finetune, prune and distill.'),
 ([{'kind': 'distill'}, {'kind': 'export-onnx'}],
  "r.yaml: stage 1 'distill' has no smaller student: distillation trains a pruned model to imitate the fine-tuned "
  "one, so a 'prune' stage must come before it."),
 ([{'kind': 'export-onnx'}, {'kind': 'quantize', 'mode': 'torch-int8-dynamic'}],
  "r.yaml: stage 2 'quantize': torch-int8-dynamic must come before the exports (it changes the torch model)."),
 ([{'kind': 'quantize'}, {'kind': 'export-onnx'}],
  "r.yaml: stage 1 'quantize' needs an ONNX model: put an 'export-onnx' stage before it."),
 ([{'kind': 'export-mobile'}],
  "r.yaml: stage 1 'export-mobile' needs an ONNX model: put an 'export-onnx' stage before it."),
 ([{'kind': 'build-tensorrt'}],
  "r.yaml: stage 1 'build-tensorrt' needs an ONNX model: put an 'export-onnx' stage before it."),
 ([{'kind': 'quantize', 'mode': 'torch-int8-dynamic'}, {'kind': 'export-onnx'}],
  "r.yaml: stage 2 'export-onnx' after torch-int8-dynamic (stage 1): torch's quantized modules do not export to "
  'ONNX. Quantize the ONNX model instead (mode int8-dynamic after export-onnx).'),
 ([{'kind': 'export-onnx'}, {'kind': 'export-onnx'}],
  "r.yaml: stage 2 'export-onnx': the recipe already exports ONNX at stage 1."),
 ([{'fuse': False, 'kind': 'export-onnx'}, {'kind': 'build-tensorrt'}, {'kind': 'quantize'}],
  "r.yaml: stage 3 'quantize' comes after 'build-tensorrt' (stage 2), whose build_engine.sh uses the ONNX model as "
  'it was then: quantize before build-tensorrt (int8-static, symmetric: true for an int8 engine).'),
 ([{'fuse': False, 'kind': 'export-onnx'}, {'kind': 'quantize'}, {'kind': 'quantize', 'mode': 'fp16'}],
  "r.yaml: stage 3 'quantize': the ONNX model is already quantized at stage 2."),
 ([{'fuse': False, 'kind': 'export-onnx'}, {'kind': 'quantize', 'mode': 'int8-dynamic'}, {'kind': 'build-tensorrt'}],
  "r.yaml: stage 3 'build-tensorrt': TensorRT cannot parse the int8-dynamic model of stage 2 (onnxruntime-only "
  'integer ops). For an int8 engine quantize with mode int8-static, symmetric: true (Q/DQ); for fp16 leave the ONNX '
  'model in fp32 (TensorRT converts it).'),
 ([{'fuse': False, 'kind': 'export-onnx'}, {'kind': 'quantize', 'mode': 'int8-static'}, {'kind': 'build-tensorrt'}],
  "r.yaml: stage 3 'build-tensorrt': TensorRT takes only symmetric int8 Q/DQ (int8, zero point 0); set symmetric: "
  'true and weight_type: s8 on the quantize of stage 2.'),
 ([{'fuse': False, 'kind': 'export-onnx'},
   {'kind': 'quantize', 'mode': 'int8-static', 'symmetric': True, 'weight_type': 'u8'},
   {'kind': 'build-tensorrt'}],
  "r.yaml: stage 3 'build-tensorrt': TensorRT takes only symmetric int8 Q/DQ (int8, zero point 0); set symmetric: "
  'true and weight_type: s8 on the quantize of stage 2.'),
 ([{'fuse': False, 'kind': 'export-onnx'}, {'kind': 'build-tensorrt', 'precision': 'int8'}],
  "r.yaml: stage 2 'build-tensorrt': an int8 engine needs explicit Q/DQ: put 'quantize' with mode int8-static, "
  'symmetric: true before it (TensorRT 10 deprecates implicit calibration).'),
 ([{'fuse': False, 'kind': 'export-onnx'},
   {'kind': 'quantize', 'mode': 'fp16'},
   {'kind': 'build-tensorrt', 'precision': 'int8'}],
  "r.yaml: stage 3 'build-tensorrt': an int8 engine needs explicit Q/DQ: put 'quantize' with mode int8-static, "
  'symmetric: true before it (TensorRT 10 deprecates implicit calibration).'),
 ([{'fuse': True, 'kind': 'export-onnx'}, {'kind': 'build-tensorrt'}],
  "r.yaml: stage 2 'build-tensorrt': TensorRT cannot parse onnxruntime's fused operators (Attention, SkipLayerNorm); "
  "set 'fuse: false' on export-onnx (stage 1)."),
 ([{'kind': 'finetune'}],
  'r.yaml: no stage writes a deployable model. End the recipe with an export (export-onnx, export-torchscript, '
  'export-mobile, build-tensorrt or export-pytorch).'),
 ([{'kind': 'quantize', 'mode': 'torch-int8-dynamic'}],
  'r.yaml: no stage writes a deployable model. End the recipe with an export (export-onnx, export-torchscript, '
  'export-mobile, build-tensorrt or export-pytorch).'),
 ([{'kind': 'finetune'},
   {'kind': 'prune', 'layers': 1},
   {'kind': 'distill'},
   {'kind': 'sparsify'},
   {'kind': 'export-onnx'},
   {'kind': 'quantize'},
   {'kind': 'export-mobile'}],
  None),
 ([{'fuse': False, 'kind': 'export-onnx'},
   {'kind': 'quantize', 'mode': 'int8-static', 'symmetric': True},
   {'kind': 'build-tensorrt', 'precision': 'int8'},
   {'kind': 'export-pytorch'}],
  None),
 ([{'fuse': False, 'kind': 'export-onnx'}, {'kind': 'quantize', 'mode': 'fp16'}, {'kind': 'build-tensorrt'}], None),
 ([{'kind': 'quantize', 'mode': 'torch-int8-dynamic'}, {'kind': 'export-torchscript'}, {'kind': 'export-pytorch'}],
  None),
 ([{'fuse': False, 'kind': 'export-onnx'}, {'kind': 'export-mobile'}, {'kind': 'quantize'}], None),
 ([{'kind': 'export-torchscript'}, {'kind': 'export-onnx'}, {'kind': 'quantize', 'mode': 'torch-int8-dynamic'}],
  "r.yaml: stage 3 'quantize': torch-int8-dynamic must come before the exports (it changes the torch model).")]


@pytest.mark.parametrize("stages, message", CASES)
def test_order_rules_keep_their_messages(stages, message):
    configs = [parse_stage(s, f"r.yaml: stage {i}") for i, s in enumerate(stages, start=1)]
    if message is None:
        check_order(configs, "r.yaml")
        return
    with pytest.raises(ConfigError) as err:
        check_order(configs, "r.yaml")
    assert str(err.value) == message
