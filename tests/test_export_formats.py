"""edgebert.export: graph fusion, TorchScript / torch.export, ORT-format (mobile) on tiny BERT and ALBERT.

Every export is compared with the eager model (or, for .ort, with its .onnx) on texts of several
lengths, alone and in padded batches. These exports are lossless: logits agree to ~1e-4.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from edgebert.errors import ConfigError, ExportError

TEXTS = ["hi", "i love this movie", "this is awful", "where is my card and can i change my address",
         "great great great film, i love it and you will love it too, it is fun and not boring at all",
         "help", "what are the open hours for the new account payment desk please"]


@pytest.fixture(scope="module", params=["bert", "albert"])
def exported(request, tmp_path_factory):
    """(arch, loaded fine-tuned classifier, its plain ONNX export) per architecture."""
    from edgebert import models
    from edgebert.export import export_onnx
    from edgebert.export.fuse import eager_attention

    folder = request.getfixturevalue({"bert": "tiny_classifier_dir", "albert": "tiny_albert_classifier_dir"}[request.param])
    loaded = models.load(str(folder))
    impl = loaded.model.config._attn_implementation
    with eager_attention(loaded.model):  # the pattern onnxruntime fuses, on transformers 4.x and 5.x
        path = export_onnx(loaded.model, loaded.tokenizer, tmp_path_factory.mktemp(f"fmt-{request.param}") / "model.onnx")
    assert loaded.model.config._attn_implementation == impl  # restored
    return request.param, loaded, path


# -- fusion ------------------------------------------------------------------------------------

def test_fuse_onnx(exported, tmp_path):
    import onnx

    from edgebert.export import fuse_onnx, fusion_params, validate_onnx
    from edgebert.export.fuse import initializer_bytes

    arch, loaded, path = exported
    params = fusion_params(loaded.model)
    assert params == {"model_type": arch, "num_heads": 4, "hidden_size": 32}
    out = tmp_path / "fused.onnx"
    report = fuse_onnx(path, out, **params)
    assert report["path"] == str(out) and out.is_file()
    ops = report["fused_ops"]
    assert report["weight_bytes_in"] == initializer_bytes(onnx.load(str(path)))
    if arch == "bert":
        assert ops["Attention"] == 2 and ops["SkipLayerNormalization"] == 4
        assert ops["EmbedLayerNormalization"] == 1 and ops["BiasGelu"] == 2
        assert report["attention_nodes"] == 2 and report["notes"] == []
    else:
        # MultiHeadAttention keeps Q/K/V as MatMuls on the shared weights; the first use of the
        # shared layer (fed by the embedding projection, not a LayerNorm) is not fused.
        assert "Attention" not in ops and ops["MultiHeadAttention"] == 1 and ops["SkipLayerNormalization"] == 4
        assert report["weight_bytes_out"] <= 1.05 * report["weight_bytes_in"], report
        assert report["bytes_out"] <= 1.05 * report["bytes_in"], report
        # every shared (hidden x hidden) weight is stored once, as in the unfused export
        square = [i for i in onnx.load(str(out)).graph.initializer if list(i.dims) == [32, 32]]
        square_in = [i for i in onnx.load(str(path)).graph.initializer if list(i.dims) == [32, 32]]
        assert len(square) == len(square_in) == 5  # Q, K, V, attention out, pooler
    fused_ops = {n.op_type for n in onnx.load(str(out)).graph.node}
    assert {"SkipLayerNormalization"} <= fused_ops
    check = validate_onnx(loaded.model, loaded.tokenizer, out, TEXTS)
    assert check["max_abs_logit_diff"] < 1e-4 and check["label_agreement"] == 1.0, check


@pytest.mark.parametrize("arch", ["bert", "albert"])
def test_fuse_head_pruned_layers(arch, request, tmp_path):
    """Layers with pruned heads (fewer heads than the config says, a different count per layer) are
    still fused, each fused node runs its own layer's head count, and the fused graph matches the
    model. transformers 5 writes -1 for the head count into the Q Reshape, so onnxruntime alone
    would give every node the config's count."""
    import onnx
    from onnx import helper

    from edgebert import models
    from edgebert.compress.prune import prune_heads_
    from edgebert.export import export_onnx, fuse_onnx, fusion_params, validate_onnx
    from edgebert.export.fuse import eager_attention

    folder = request.getfixturevalue({"bert": "tiny_classifier_dir", "albert": "tiny_albert_classifier_dir"}[arch])
    loaded = models.load(str(folder))
    # of 4 heads: BERT keeps 3 in layer 0 and 1 in layer 1; ALBERT's one shared layer keeps 3
    keep = {0: [0, 1, 3], 1: [2]} if arch == "bert" else {0: [0, 2, 3]}
    prune_heads_(loaded.model, loaded.spec, keep)
    with eager_attention(loaded.model):
        path = export_onnx(loaded.model, loaded.tokenizer, tmp_path / "model.onnx")
    report = fuse_onnx(path, tmp_path / "fused.onnx", **fusion_params(loaded.model))
    op = "Attention" if arch == "bert" else "MultiHeadAttention"
    nodes = [n for n in onnx.load(str(tmp_path / "fused.onnx")).graph.node if n.op_type == op]
    heads = [next(helper.get_attribute_value(a) for a in n.attribute if a.name == "num_heads") for n in nodes]
    # graph order is layer order; ALBERT's first layer use is not fused (see test_fuse_onnx)
    assert heads == ([3, 1] if arch == "bert" else [3]), heads
    assert report["fused_ops"].get(op) == len(heads)
    check = validate_onnx(loaded.model, loaded.tokenizer, tmp_path / "fused.onnx", TEXTS)
    assert check["max_abs_logit_diff"] < 1e-4 and check["label_agreement"] == 1.0, check


def test_fusion_chatter_is_dropped_and_logging_restored(capfd, caplog):
    """onnxruntime's fusion passes log warnings (e.g. 'Input hidden size (192) is not same as weight
    matrix dimension of q,k,v (384)' on MiniLM with pruned heads) and print; none of it reaches the
    terminal, other loggers keep working, and the fusion logger's own level comes back."""
    import logging

    import onnxruntime.transformers.fusion_attention as fusion_attention

    from edgebert.export.fuse import _quiet_fusion

    # onnxruntime imports its fusion modules under their bare names as well as under the package
    loggers = [logging.getLogger("fusion_attention"), fusion_attention.logger]
    bare = loggers[0]
    other = logging.getLogger("edgebert.test.other")
    bare.setLevel(logging.INFO)  # a non-default level, to see it restored
    try:
        capfd.readouterr()
        caplog.clear()
        with _quiet_fusion():
            for lg in loggers:
                lg.warning("Input hidden size (192) is not same as weight matrix dimension of q,k,v (384)")
            print("fused 4 attention nodes")
            other.warning("still logged")
        out, _ = capfd.readouterr()
        assert out == ""
        assert [r.getMessage() for r in caplog.records] == ["still logged"]
        assert bare.level == logging.INFO
        caplog.clear()
        for lg in loggers:
            lg.warning("visible again")
        assert [r.getMessage() for r in caplog.records] == ["visible again"] * 2
    finally:
        bare.setLevel(logging.NOTSET)


def test_fused_graph_handles_left_padding(exported, tmp_path):
    """The raw attention mask is kept, so a mask with zeros anywhere (not only at the end) works."""
    import onnxruntime as ort
    import torch

    from edgebert.export import fuse_onnx, fusion_params, onnx_feeds

    arch, loaded, path = exported
    fuse_onnx(path, tmp_path / "f.onnx", **fusion_params(loaded.model))
    enc = loaded.tokenizer(["i love this movie", "awful"], padding="longest", return_tensors="np")
    ids, mask = enc["input_ids"].copy(), enc["attention_mask"].copy()
    n = int(mask[1].sum())
    ids[1] = np.roll(ids[1], ids.shape[1] - n)  # left-pad the short row
    mask[1] = np.roll(mask[1], ids.shape[1] - n)
    feeds = onnx_feeds(["input_ids", "attention_mask", "token_type_ids"], {"input_ids": ids, "attention_mask": mask})
    session = ort.InferenceSession(str(tmp_path / "f.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(["logits"], feeds)[0]
    with torch.inference_mode():
        ref = loaded.model(**{k: torch.from_numpy(v) for k, v in feeds.items()}).logits.numpy()
    assert np.abs(got - ref).max() < 1e-4


def test_fuse_notes_when_attention_is_not_fused(exported, tmp_path):
    """A graph whose attention pattern onnxruntime does not know still fuses the rest, and says so."""
    import onnx

    from edgebert.export import fuse_onnx, fusion_params

    arch, loaded, path = exported
    if arch != "bert":
        pytest.skip("one architecture is enough")
    model = onnx.load(str(path))
    for node in model.graph.node:  # hide the attention pattern: Softmax -> Sigmoid
        if node.op_type == "Softmax":
            node.op_type = "Sigmoid"
            del node.attribute[:]
    onnx.save(model, str(tmp_path / "odd.onnx"))
    report = fuse_onnx(tmp_path / "odd.onnx", tmp_path / "f.onnx", **fusion_params(loaded.model))
    assert report["attention_nodes"] == 0 and report["fused_ops"]["SkipLayerNormalization"] == 4
    assert "eager_attention" in report["notes"][0]


def test_fuse_errors(exported, tmp_path):
    from edgebert.export import fuse_onnx, fusion_params

    _, _, path = exported
    with pytest.raises(ExportError, match="does not exist"):
        fuse_onnx(tmp_path / "missing.onnx", tmp_path / "o.onnx", model_type="bert", num_heads=4, hidden_size=32)
    with pytest.raises(ConfigError, match="multiple of num_heads"):
        fuse_onnx(path, tmp_path / "o.onnx", model_type="bert", num_heads=5, hidden_size=32)
    with pytest.raises(ConfigError, match="model_type must be one of bert, albert"):
        fuse_onnx(path, tmp_path / "o.onnx", model_type="gpt2", num_heads=4, hidden_size=32)
    with pytest.raises(ConfigError, match="opt_level"):
        fuse_onnx(path, tmp_path / "o.onnx", model_type="bert", num_heads=4, hidden_size=32, opt_level=3)
    with pytest.raises(ConfigError, match="roberta"):
        from types import SimpleNamespace

        fusion_params(SimpleNamespace(model_type="roberta", num_attention_heads=4, hidden_size=32))


# -- TorchScript / torch.export ----------------------------------------------------------------

def test_torchscript_round_trip(exported, tmp_path):
    import torch

    from edgebert.export import export_torchscript, validate_torchscript

    arch, loaded, _ = exported
    loaded.model.train()  # export must restore the mode
    path = export_torchscript(loaded.model, loaded.tokenizer, tmp_path / "model.pt")
    assert path == tmp_path / "model.pt" and loaded.model.training
    with warnings.catch_warnings():  # torch >= 2.10 marks torch.jit deprecated; still supported
        warnings.simplefilter("ignore", DeprecationWarning)
        module = torch.jit.load(str(path))  # loads without edgebert / transformers classes
    assert [a.name for a in module.forward.schema.arguments][1:] == list(loaded.spec.input_names)
    report = validate_torchscript(loaded.model, loaded.tokenizer, path, TEXTS)
    assert report["n"] == len(TEXTS) and report["min_tokens"] < report["max_tokens"]
    assert report["max_abs_logit_diff"] < 1e-4 and report["label_agreement"] == 1.0, report
    assert loaded.model.training
    loaded.model.eval()


def test_torchscript_runs_in_bench_runner(exported, tmp_path):
    """The benchmark's TorchScript runner reads the input order from the saved signature."""
    from edgebert.bench.variants import TorchScriptRunner, VariantSpec
    from edgebert.export import export_torchscript

    arch, loaded, _ = exported
    path = export_torchscript(loaded.model, loaded.tokenizer, tmp_path / "model.pt")
    runner = TorchScriptRunner(VariantSpec(name="ts", kind="torchscript", runtime="torchscript", path=str(path),
                                           tokenizer_dir=None, label_names=None))
    enc = {k: np.asarray(v) for k, v in loaded.tokenizer(TEXTS[:3], padding="longest", return_tensors="np").items()}
    logits = runner.logits(runner(runner.prepare(enc)))
    assert logits.shape == (3, loaded.model.config.num_labels)


def test_pt2_dynamic_batch_and_sequence(exported, tmp_path):
    import torch

    from edgebert.export import export_pt2, load_torch_export, validate_torchscript

    arch, loaded, _ = exported
    path = export_pt2(loaded.model, loaded.tokenizer, tmp_path / "model.pt2")
    program = torch.export.load(str(path))
    assert len(program.graph_signature.user_inputs) == len(loaded.spec.input_names)
    report = validate_torchscript(loaded.model, loaded.tokenizer, path, TEXTS, batch_size=4)
    assert report["max_abs_logit_diff"] < 1e-4 and report["label_agreement"] == 1.0, report
    module = load_torch_export(path)
    ids = torch.randint(5, 60, (5, 41))  # batch and length never seen at export
    out = module(ids, torch.ones_like(ids), torch.zeros_like(ids))
    assert tuple(out.shape) == (5, loaded.model.config.num_labels)


def test_validate_torchscript_sees_a_different_model(exported, tmp_path):
    import torch

    from edgebert.export import export_torchscript, validate_torchscript

    arch, loaded, _ = exported
    path = export_torchscript(loaded.model, loaded.tokenizer, tmp_path / "model.pt")
    head = loaded.model.classifier
    saved = head.bias.detach().clone()
    try:
        with torch.no_grad():
            head.bias += torch.tensor([1.0] + [0.0] * (head.bias.numel() - 1))
        report = validate_torchscript(loaded.model, loaded.tokenizer, path, TEXTS)
    finally:
        with torch.no_grad():
            head.bias.copy_(saved)
    assert report["max_abs_logit_diff"] == pytest.approx(1.0, abs=1e-4)


# -- ORT format (mobile) -----------------------------------------------------------------------

def test_export_mobile(exported, tmp_path):
    import onnxruntime as ort

    from edgebert.export import export_mobile

    arch, loaded, path = exported
    report = export_mobile(path, tmp_path / "mobile", tokenizer=loaded.tokenizer, texts=TEXTS)
    ort_path = tmp_path / "mobile" / "model.ort"
    assert report["ort_path"] == str(ort_path) and ort_path.is_file()
    config = tmp_path / "mobile" / "model.required_operators.config"
    assert report["config_path"] == str(config) and config.is_file()
    assert any(line.startswith("ai.onnx;") and "MatMul" in line for line in report["required_operators"])
    assert report["max_abs_logit_diff"] < 1e-4 and report["label_agreement"] == 1.0
    session = ort.InferenceSession(str(ort_path), providers=["CPUExecutionProvider"])  # .ort loads directly
    assert [i.name for i in session.get_inputs()] == list(loaded.spec.input_names)
    usability = report["usability"]
    assert isinstance(usability["try_nnapi_or_coreml"], bool) and usability["log"]
    assert set(usability["providers"]) == {"NNAPI", "CoreML NeuralNetwork", "CoreML MLProgram"}
    for info in usability["providers"].values():
        assert info["suitability"] in {"YES", "MAYBE", "NO"} and 0 < info["nodes"]
    assert usability["dynamic_inputs"] == list(loaded.spec.input_names)


def test_export_mobile_of_quantized_fused_model(exported, tmp_path):
    """An int8 fused graph (com.microsoft ops) converts too; compared on synthetic token ids."""
    from edgebert.compress.quantize import quantize_onnx
    from edgebert.export import export_mobile, fuse_onnx, fusion_params

    arch, loaded, path = exported
    if arch != "bert":
        pytest.skip("one architecture is enough")
    fuse_onnx(path, tmp_path / "fused.onnx", **fusion_params(loaded.model))
    quantize_onnx(tmp_path / "fused.onnx", tmp_path / "int8.onnx")
    report = export_mobile(tmp_path / "int8.onnx", tmp_path / "m", check_usability=False)
    assert "usability" not in report and report["max_abs_logit_diff"] < 1e-3
    assert any("com.microsoft" in line and "QAttention" in line for line in report["required_operators"])
    with pytest.raises(ExportError, match="not an ONNX file"):
        export_mobile(tmp_path / "m" / "int8.ort", tmp_path / "m2")
    with pytest.raises(ConfigError, match="style"):
        export_mobile(tmp_path / "int8.onnx", tmp_path / "m3", style="Eager")
