"""edgebert.compress.quantize: ONNX int8 (dynamic / static QDQ), fp16, torch int8, accuracy budget.

Every quantized model is checked against its source through onnxruntime (``validate_onnx``) on the
tiny sentiment task, with a classifier trained here until it separates the classes (the shared
``tiny_classifier_dir`` fixture stays near chance: its logits barely move, which would make label
agreement meaningless).
"""

from __future__ import annotations

import pytest

from edgebert.errors import CompressionError, ConfigError

LONGER = ["i love this movie and the film is great fun, not boring at all",
          "this is an awful film, i hate it and it was boring, what a bad movie"]


def train_confident(folder, data_dir):
    """The fine-tuned fixture model, trained on a little further (constant learning rate, one thread:
    well under a second) until it separates the tiny task's dev split."""
    import torch

    from edgebert import models
    from edgebert.data import collate_batches, load_dataset

    loaded = models.load(str(folder))
    ds = load_dataset(str(data_dir)).with_labels(loaded.label_names)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny matrices: threads only add overhead on a shared machine
    try:
        torch.manual_seed(0)
        optimizer = torch.optim.AdamW(loaded.model.parameters(), lr=2e-3)
        loaded.model.train()
        for epoch in range(4):
            for inputs, labels, _rows in collate_batches(ds.split("train"), loaded.tokenizer, batch_size=8,
                                                         shuffle=True, seed=epoch):
                loaded.model(**inputs, labels=labels).loss.backward()
                optimizer.step()
                optimizer.zero_grad()
    finally:
        torch.set_num_threads(threads)
    loaded.model.eval()
    return loaded, ds


@pytest.fixture(scope="module", params=["bert", "albert"])
def clf(request, tiny_sentiment_dir, tmp_path_factory):
    """(loaded model, dataset, fp32 ONNX path, fused ONNX path, dev texts, dev labels) per architecture."""
    from edgebert.export import export_onnx, fuse_onnx, fusion_params
    from edgebert.export.fuse import eager_attention

    folder = request.getfixturevalue({"bert": "tiny_classifier_dir", "albert": "tiny_albert_classifier_dir"}[request.param])
    loaded, ds = train_confident(folder, tiny_sentiment_dir)
    out = tmp_path_factory.mktemp(f"quant-{request.param}")
    with eager_attention(loaded.model):  # the pattern onnxruntime fuses, on transformers 4.x and 5.x
        fp32 = export_onnx(loaded.model, loaded.tokenizer, out / "model.onnx")
    fused = out / "fused.onnx"
    fuse_onnx(fp32, fused, **fusion_params(loaded.model))
    dev = ds.split("dev")
    return {"arch": request.param, "loaded": loaded, "ds": ds, "fp32": fp32, "fused": fused,
            "texts": list(dev.texts) + LONGER, "dev": dev}


def _validate(clf, path):
    from edgebert.export import validate_onnx

    return validate_onnx(clf["loaded"].model, clf["loaded"].tokenizer, path, clf["texts"])


def _ops(path) -> list[str]:
    import onnx

    return [n.op_type for n in onnx.load(str(path)).graph.node]


# -- settings --------------------------------------------------------------------------------

def test_settings_are_checked_before_any_work(tmp_path):
    """The recipe's config rejects these; a direct call gets the same checks (ConfigError), not an
    onnxruntime failure or a silently ignored setting."""
    from edgebert.compress.quantize import quantize_onnx

    missing = tmp_path / "missing.onnx"  # checked before the file is read
    with pytest.raises(ConfigError, match="symmetric applies to int8-static only"):
        quantize_onnx(missing, tmp_path / "q.onnx", mode="int8-dynamic", symmetric=True)
    with pytest.raises(ConfigError, match="weight_type must be one of s8, u8; got 'int4'"):
        quantize_onnx(missing, tmp_path / "q.onnx", weight_type="int4")
    with pytest.raises(ConfigError, match="calibration_method must be one of minmax, entropy, percentile"):
        quantize_onnx(missing, tmp_path / "q.onnx", mode="int8-static", calibration_method="mse")


# -- int8 dynamic ------------------------------------------------------------------------------

def test_int8_dynamic_plain_and_fused(clf, tmp_path):
    from edgebert.compress.quantize import layer_groups, quantize_onnx

    for name in ("fp32", "fused"):  # the fused graph needs the DefaultTensorType option (set inside)
        out = tmp_path / f"{name}-int8.onnx"
        report = quantize_onnx(clf[name], out, mode="int8-dynamic")
        assert report["path"] == str(out) and out.is_file()
        assert report["weight_bytes_out"] < 0.5 * report["weight_bytes_in"]
        assert report["nodes_float"] == [] and report["nodes_excluded"] == []
        every = [n for nodes in layer_groups(clf[name]).values() for n in nodes]
        assert sorted(report["nodes_quantized"]) == sorted(every)
        ops = _ops(out)
        assert "MatMulInteger" in ops and "DynamicQuantizeLinear" in ops
        if name == "fused" and clf["arch"] == "bert":
            assert ops.count("QAttention") == 2 and "QEmbedLayerNormalization" in ops
        check = _validate(clf, out)
        assert check["label_agreement"] >= 0.95, check
        assert check["max_abs_logit_diff"] < 0.3, check


def test_albert_shared_weights_are_quantized_once(clf, tmp_path):
    """ALBERT's legacy export reuses each layer weight through Identity nodes; every use must be
    quantized (to the same int8 tensor), not only the first layer's."""
    import onnx

    from edgebert.compress.quantize import layer_groups, quantize_onnx

    if clf["arch"] != "albert":
        pytest.skip("ALBERT only")
    report = quantize_onnx(clf["fp32"], tmp_path / "q.onnx")
    groups = layer_groups(clf["fp32"])
    assert set(groups["layer.1"]) <= set(report["nodes_quantized"])
    model = onnx.load(str(tmp_path / "q.onnx"))
    int8 = [i.name for i in model.graph.initializer
            if i.data_type == onnx.TensorProto.INT8 and i.name.endswith("_quantized")]
    # one int8 copy per distinct weight: Q, K, V, attention out, FFN in, FFN out, projection, 2 Gemms
    assert len(int8) == 9, int8
    assert not [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT and len(i.dims) == 2
                and i.dims[0] == i.dims[1] == 32]  # no float copy of the shared (32 x 32) weights left


# -- int8 static (QDQ) -------------------------------------------------------------------------

def test_int8_static_qdq(clf, tmp_path):
    import onnx
    from onnx import numpy_helper

    from edgebert.compress.quantize import calibration_feeds, quantize_onnx
    from edgebert.export import onnx_input_names

    train = clf["ds"].split("train")
    names = onnx_input_names(clf["loaded"].model)
    feeds = calibration_feeds(clf["loaded"].tokenizer, train.texts, names, samples=32, batch_size=8)
    assert len(feeds) == 4 and all(f["input_ids"].shape == feeds[0]["input_ids"].shape for f in feeds)
    out = tmp_path / "qdq.onnx"
    report = quantize_onnx(clf["fp32"], out, mode="int8-static", symmetric=True, calibration_samples=24,
                           calibration_feeds=feeds)
    assert report["calibration_rows"] == 24  # three batches of 8: stops at calibration_samples
    ops = _ops(out)
    assert ops.count("QuantizeLinear") > 0 and ops.count("DequantizeLinear") > 0
    assert report["op_counts"]["QuantizeLinear"] == ops.count("QuantizeLinear")
    assert report["weight_bytes_out"] < 0.75 * report["weight_bytes_in"]  # embeddings stay fp32
    model = onnx.load(str(out))
    inits = {i.name: i for i in model.graph.initializer}
    for node in model.graph.node:  # symmetric int8: what TensorRT's explicit quantization needs
        if node.op_type == "QuantizeLinear":
            zp = inits[node.input[2]]
            assert zp.data_type == onnx.TensorProto.INT8 and not numpy_helper.to_array(zp).any()
    check = _validate(clf, out)
    assert check["label_agreement"] >= 0.95 and check["max_abs_logit_diff"] < 0.3, check


def test_int8_static_entropy_on_fused_graph(clf, tmp_path):
    from edgebert.compress.quantize import calibration_feeds, quantize_onnx
    from edgebert.export import onnx_input_names

    if clf["arch"] != "bert":
        pytest.skip("one architecture is enough for the calibration method")
    feeds = calibration_feeds(clf["loaded"].tokenizer, clf["ds"].split("train").texts,
                              onnx_input_names(clf["loaded"].model), samples=16)
    report = quantize_onnx(clf["fused"], tmp_path / "e.onnx",
                           mode="int8-static", calibration_method="entropy", calibration_feeds=feeds)
    assert report["nodes_quantized"] and "QuantizeLinear" in _ops(tmp_path / "e.onnx")
    assert _validate(clf, tmp_path / "e.onnx")["label_agreement"] >= 0.95


def test_int8_static_needs_calibration(clf, tmp_path):
    from edgebert.compress.quantize import quantize_onnx

    with pytest.raises(CompressionError, match="calibration"):
        quantize_onnx(clf["fp32"], tmp_path / "x.onnx", mode="int8-static")


# -- fp16 --------------------------------------------------------------------------------------

def test_fp16_keeps_layernorm_in_fp32(clf, tmp_path):
    import onnx

    from edgebert.compress.quantize import FP16_KEEP_FP32_OPS, quantize_onnx

    for name in ("fp32", "fused"):
        out = tmp_path / f"{name}-fp16.onnx"
        report = quantize_onnx(clf[name], out, mode="fp16")
        assert report["weight_bytes_out"] < 0.6 * report["weight_bytes_in"]
        model = onnx.load(str(out))
        assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.INT64
        assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # keep_io_types
        inits = {i.name: i.data_type for i in model.graph.initializer}
        norms = [n for n in model.graph.node if n.op_type in FP16_KEEP_FP32_OPS]
        assert norms
        for node in norms:  # LayerNorm gamma / beta stay float32
            for i in node.input:
                if i in inits:
                    assert inits[i] == onnx.TensorProto.FLOAT, (node.name, i)
        check = _validate(clf, out)
        assert check["label_agreement"] == 1.0 and check["max_abs_logit_diff"] < 0.02, check
        from edgebert.bench.variants import onnx_precision

        # what bench and the manifest call it: fp16 (the float32 LayerNorm weights are a small share)
        assert onnx_precision(out) == "fp16" and onnx_precision(clf[name]) == "fp32"


# -- exclusions, groups ------------------------------------------------------------------------

def test_exclude_keeps_nodes_float(clf, tmp_path):
    from edgebert.compress.quantize import layer_groups, quantize_onnx

    groups = layer_groups(clf["fp32"])
    keep = groups["layer.0"][:2] + groups["classifier"]  # MatMuls and Gemms (dynamic renames Gemms)
    report = quantize_onnx(clf["fp32"], tmp_path / "x.onnx", exclude=keep)
    assert sorted(report["nodes_float"]) == sorted(keep)
    assert not set(keep) & set(report["nodes_quantized"])
    with pytest.raises(ConfigError, match="not in the graph: 'nope'"):
        quantize_onnx(clf["fp32"], tmp_path / "y.onnx", exclude=["nope"])
    with pytest.raises(ConfigError, match="torch_quantize_dynamic"):
        quantize_onnx(clf["fp32"], tmp_path / "z.onnx", mode="torch-int8-dynamic")
    with pytest.raises(CompressionError, match="does not exist"):
        quantize_onnx(tmp_path / "missing.onnx", tmp_path / "z.onnx")


def test_layer_groups(clf):
    from edgebert.compress.quantize import layer_groups

    plain = layer_groups(clf["fp32"])
    assert list(plain) == ["embeddings", "layer.0", "layer.1", "classifier"]
    assert all(len(plain[f"layer.{i}"]) == 6 for i in range(2))  # Q, K, V, attention out, FFN in, FFN out
    assert len(plain["classifier"]) == 2  # pooler and head
    if clf["arch"] == "albert":  # one shared module called twice: its second use carries "_1" names
        assert all("_1/" in n for n in plain["layer.1"])
        assert any("embedding_hidden_mapping_in" in n for n in plain["embeddings"])
    fused = layer_groups(clf["fused"])
    assert list(fused) == ["embeddings", "layer.0", "layer.1", "classifier"]
    if clf["arch"] == "bert":
        assert all(len(fused[f"layer.{i}"]) == 4 and f"Attention_{i}" in fused[f"layer.{i}"] for i in range(2))


# -- accuracy-aware search ---------------------------------------------------------------------

def test_quantize_with_budget_keeps_sensitive_layer(clf, tmp_path):
    """A real evaluator (onnxruntime on the dev split) that takes 20 points off whenever layer 1 is
    int8: the search must find layer 1, keep it float, and stop there. (The budget, 10 points, leaves
    room for one of the 20 dev texts to flip through int8 rounding alone.)"""
    from edgebert.compress.quantize import layer_groups, onnx_accuracy_fn, quantize_with_budget, quantized_nodes

    dev = clf["dev"]
    real = onnx_accuracy_fn(clf["loaded"].tokenizer, dev.texts, dev.labels)
    target = set(layer_groups(clf["fp32"])["layer.1"])
    calls = []

    def eval_fn(path):
        acc = real(path)
        if target & set(quantized_nodes(clf["fp32"], path)):
            acc = max(0.0, acc - 0.2)
        calls.append(path)
        return acc

    out = tmp_path / "budget.onnx"
    result = quantize_with_budget(clf["fp32"], out, eval_fn, max_accuracy_drop=10.0)
    assert result["fp32_accuracy"] >= 0.9  # the trained tiny classifier separates the dev split
    assert result["kept_fp32"] == ["layer.1"]
    assert sorted(result["excluded_nodes"]) == sorted(target)
    assert result["within_budget"] and result["accuracy_drop"] <= 10.0
    assert result["sensitivity"][0][0] == "layer.1" and result["sensitivity"][0][1] >= 15.0
    assert all(drop <= 5.0 for _, drop in result["sensitivity"][1:])
    assert [a["kept_fp32"] for a in result["attempts"]] == [[], ["layer.1"]]
    assert result["attempts"][0]["accuracy_drop"] >= 15.0
    assert sorted(result["quantize"]["nodes_float"]) == sorted(target)
    assert out.is_file() and not target & set(quantized_nodes(clf["fp32"], out))
    # fp32 + first attempt + one sensitivity run per group + the final attempt
    assert len(calls) == 2 + len(result["sensitivity"]) + 1


def test_quantize_without_budget_is_one_attempt(clf, tmp_path):
    from edgebert.compress.quantize import onnx_accuracy_fn, quantize_with_budget

    dev = clf["dev"]
    result = quantize_with_budget(clf["fused"], tmp_path / "q.onnx",
                                  onnx_accuracy_fn(clf["loaded"].tokenizer, dev.texts, dev.labels))
    assert len(result["attempts"]) == 1 and result["kept_fp32"] == [] and result["sensitivity"] == []
    assert result["within_budget"] and result["accuracy"] >= 0.95
    with pytest.raises(CompressionError, match="fraction"):
        quantize_with_budget(clf["fp32"], tmp_path / "r.onnx", lambda p: 97.0)


def test_layer_sensitivity_orders_groups(tmp_path):
    """Each group is quantized alone (the others excluded); the most damaging group comes first."""
    from pathlib import Path

    from edgebert.compress.quantize import layer_sensitivity

    seen = []

    def quantize_fn(src, dst, exclude):
        seen.append(sorted(exclude))
        Path(dst).write_text(",".join(exclude))

    def eval_fn(path):  # quantizing group b costs 10 points
        return 0.9 if "b1" not in Path(path).read_text().split(",") else 1.0

    groups = {"a": ["a1"], "b": ["b1", "b2"], "c": ["c1"]}
    result = layer_sensitivity(tmp_path / "fp32.onnx", quantize_fn, eval_fn, groups, baseline=1.0)
    assert result == [("b", pytest.approx(10.0)), ("a", 0.0), ("c", 0.0)]
    assert seen == [["b1", "b2", "c1"], ["a1", "c1"], ["a1", "b1", "b2"]]


# -- torch int8 --------------------------------------------------------------------------------

def test_torch_quantize_dynamic(clf):
    import torch

    from edgebert.compress.quantize import torch_quantize_dynamic

    model, tok = clf["loaded"].model, clf["loaded"].tokenizer
    q = torch_quantize_dynamic(model)
    assert q is not model and isinstance(model.classifier, torch.nn.Linear)  # source untouched
    linear = [m for m in q.modules() if type(m) is torch.nn.Linear]
    qlinear = [m for m in q.modules() if "quantized" in type(m).__module__ and type(m).__name__ == "Linear"]
    assert not linear and qlinear
    enc = tok(clf["texts"], padding="longest", return_tensors="pt")
    with torch.inference_mode():
        ref, got = model(**enc).logits, q(**enc).logits
    assert (ref.argmax(-1) == got.argmax(-1)).float().mean() >= 0.95
    assert float((ref - got).abs().max()) < 0.3


# -- real model --------------------------------------------------------------------------------

@pytest.mark.slow
def test_minilm_fuse_and_int8(minilm_dir, shared_data, tmp_path):
    """all-MiniLM-L6-v2 on real SST-2: fine-tune briefly, export, fuse (one Attention node per
    layer), int8 dynamic < 1/3 of fp32, labels agree with the fp32 model on 64 dev sentences.

    The checkpoint is a sentence encoder without a sentiment head. A head fitted on its frozen [CLS]
    pooler features stays weak (dev accuracy ~0.65, decisions within int8 noise: agreement 0.85-0.95
    whatever the head), so the model is fine-tuned for 40 steps first, as a deployed classifier is.
    """
    import csv

    from edgebert import models
    from edgebert.compress.quantize import quantize_onnx
    from edgebert.export import export_onnx, fuse_onnx, fusion_params, validate_onnx
    from edgebert.export.fuse import eager_attention
    from edgebert.train import FinetuneConfig, finetune

    data = tmp_path / "sst2"
    data.mkdir()
    for split, n in (("train", 640), ("dev", 64)):
        with open(shared_data / "sst2" / f"{split}.tsv", encoding="utf-8") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:n]
        with open(data / f"{split}.csv", "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            writer.writerows((r["sentence"], "positive" if r["label"] == "1" else "negative") for r in rows)
    texts = [r[0] for r in csv.reader(open(data / "dev.csv", encoding="utf-8"))][1:]
    result = finetune(str(minilm_dir), str(data), out=tmp_path / "clf", progress=False,
                      config=FinetuneConfig(epochs=1, max_steps=40, batch_size=16, max_length=64,
                                            learning_rate=1e-4, patience=0, seed=0))
    loaded = models.load(str(result.out))
    model, tok = loaded.model.eval(), loaded.tokenizer

    with eager_attention(model):
        fp32 = export_onnx(model, tok, tmp_path / "model.onnx")
    fused = fuse_onnx(fp32, tmp_path / "fused.onnx", **fusion_params(model))
    assert fused["fused_ops"]["Attention"] == 6 and fused["fused_ops"]["SkipLayerNormalization"] == 12
    report = quantize_onnx(tmp_path / "fused.onnx", tmp_path / "int8.onnx")
    assert report["bytes_out"] < report["bytes_in"] / 3, report
    check = validate_onnx(model, tok, tmp_path / "int8.onnx", texts)
    fused_check = validate_onnx(model, tok, tmp_path / "fused.onnx", texts[:16])
    print(f"\nMiniLM (dev accuracy {result.metrics.get('dev', {}).get('accuracy')}): fp32 "
          f"{report['bytes_in'] / 1e6:.1f} MB -> int8 {report['bytes_out'] / 1e6:.1f} MB; fused ops "
          f"{fused['fused_ops']}; fused vs torch {fused_check['max_abs_logit_diff']:.1e}; int8 vs torch: "
          f"max |logit diff| {check['max_abs_logit_diff']:.4f}, label agreement {check['label_agreement']:.3f}")
    assert fused_check["max_abs_logit_diff"] < 1e-3, fused_check
    assert check["label_agreement"] >= 0.95, check


def test_move_onnx_keeps_external_weights_under_the_new_name(tmp_path):
    import numpy as np
    # the per-channel alternative replaces model.onnx: its external data must follow as model.onnx.data
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edgebert.stages.quantize import move_onnx

    weight = numpy_helper.from_array(np.arange(512, dtype=np.float32).reshape(16, 32), "w")  # 2 KB: external
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 32])], [weight])
    model = helper.make_model(graph)
    src, dst = tmp_path / "per_channel.onnx", tmp_path / "model.onnx"
    onnx.save(model, str(src), save_as_external_data=True, all_tensors_to_one_file=True,
              location="per_channel.onnx.data", size_threshold=0)
    (tmp_path / "model.onnx.data").write_bytes(b"stale weights of the per-tensor model")
    move_onnx(src, dst)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.onnx.data"]
    assert onnx.load(str(dst), load_external_data=False).graph.initializer[0].external_data[0].value == "model.onnx.data"
    moved = onnx.load(str(dst))
    assert np.array_equal(numpy_helper.to_array(moved.graph.initializer[0]), numpy_helper.to_array(weight))
    plain = tmp_path / "plain.onnx"
    onnx.save(model, str(plain))
    move_onnx(plain, tmp_path / "p2.onnx")
    assert (tmp_path / "p2.onnx").is_file() and not plain.exists()
