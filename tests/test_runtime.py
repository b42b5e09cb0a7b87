"""edgebert.runtime: loading artifacts, predictions equal to the full stack, thresholds, formats,
errors, the torch-free import guarantee, input files and ``edgebert predict``."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import CLI_WITHOUT_TORCH, NEGATIVE, POSITIVE, REPO, assert_clean_error, build_runtime_artifact

from edgebert.cli import main
from edgebert.errors import (
    ConfigError,
    DataError,
    MissingDependencyError,
    ModelNotFoundError,
    RuntimeLoadError,
)
from edgebert.runtime import Classifier, Prediction, resolve_artifact
from edgebert.runtime.classifier import ProviderFallbackWarning
from edgebert.runtime.inputs import read_inputs, read_texts

# Texts of very different lengths (sorted into separate, differently padded batches) and one long
# enough to be truncated at 128 tokens (the tiny vocabulary splits unknown words into characters).
# "!" is the shortest text the runtime classifies: an empty one is refused (test_empty_texts_are_refused)
MIXED = POSITIVE[:4] + NEGATIVE[:4] + [
    "!", "good", "this movie is a great film and i love it, what fun! " * 3,
    "Supercalifragilistic words the vocabulary lacks become characters " * 8,
]


def hf_probs(model_dir, texts, max_length=128):
    """Full stack: transformers tokenizer + PyTorch model, padded batch."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    enc = tok(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    with torch.no_grad():
        logits = model(**enc).logits.double()
    return torch.softmax(logits, -1).numpy(), [model.config.id2label[i] for i in range(model.config.num_labels)]


def ort_logits_hf_tokens(onnx_path, tokenizer_dir, texts, max_length=128):
    """onnxruntime on the same file, fed by the transformers tokenizer (one text at a time, unpadded)."""
    import onnxruntime as ort
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in sess.get_inputs()]
    rows = []
    for t in texts:
        enc = tok([t], truncation=True, max_length=max_length, return_tensors="np")
        feeds = {n: np.asarray(enc.get(n, np.zeros_like(enc["input_ids"])), dtype=np.int64) for n in names}
        rows.append(sess.run(None, feeds)[0][0])
    return np.stack(rows)


def copy_artifact(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def edit_manifest(art: Path, **deploy) -> None:
    path = art / "manifest.json"
    data = json.loads(path.read_text())
    data.setdefault("deploy", {}).update(deploy)
    path.write_text(json.dumps(data))


# -- loading and predicting ---------------------------------------------------------------------

def test_predict_single_batch_and_proba(tiny_artifact_dir):
    clf = Classifier.load(tiny_artifact_dir, threads=1)
    assert clf.labels == ("negative", "positive")
    one = clf.predict("i love this movie")
    assert isinstance(one, Prediction) and one.label == "positive" and not one.abstained
    assert one.label == clf.labels[one.index] and 0.5 < one.score <= 1.0
    preds = clf.predict(POSITIVE + NEGATIVE)
    assert isinstance(preds, list) and len(preds) == 20
    accuracy = np.mean([p.label == want for p, want in zip(preds, ["positive"] * 10 + ["negative"] * 10)])
    assert accuracy >= 0.9  # the fixture learned its task; order must be kept through the length sort
    probs = clf.predict_proba(POSITIVE + NEGATIVE)
    assert probs.shape == (20, 2) and np.allclose(probs.sum(1), 1.0)
    assert [p.score for p in preds] == pytest.approx(probs.max(1).tolist())
    assert clf.predict_proba("i love this movie").shape == (2,)
    assert clf.predict([]) == [] and clf.predict_proba([]).shape == (0, 2)
    assert clf.predict(iter(["hate it"]))[0].label == clf.predict("hate it").label  # any iterable
    assert one.to_dict() == {"label": "positive", "score": one.score, "index": 1, "abstained": False}


@pytest.mark.parametrize("batch_size", [1, 3, 32])
def test_equals_full_stack_tiny_bert(tiny_classifier_dir, tiny_artifact_dir, batch_size):
    """Same labels and probabilities as transformers + PyTorch, and the same logits as onnxruntime fed by
    the transformers tokenizer, whatever the batching."""
    clf = Classifier.load(tiny_artifact_dir, batch_size=batch_size)
    ref, ref_labels = hf_probs(tiny_classifier_dir, MIXED)
    assert list(clf.labels) == ref_labels
    got = clf.predict_proba(MIXED)
    np.testing.assert_allclose(got, ref, atol=1e-5)
    assert [p.index for p in clf.predict(MIXED)] == ref.argmax(1).tolist()
    onnx_ref = ort_logits_hf_tokens(tiny_artifact_dir / "model" / "model.onnx", tiny_classifier_dir, MIXED)
    np.testing.assert_allclose(clf.logits(MIXED), onnx_ref, atol=1e-5)


def test_equals_full_stack_tiny_albert(tiny_albert_classifier_dir, tmp_path):
    art = build_runtime_artifact(tiny_albert_classifier_dir, tmp_path / "albert")
    clf = Classifier.load(art, batch_size=4)
    ref, ref_labels = hf_probs(tiny_albert_classifier_dir, MIXED)
    assert list(clf.labels) == ref_labels
    np.testing.assert_allclose(clf.predict_proba(MIXED), ref, atol=1e-5)


@pytest.mark.slow
def test_equals_full_stack_minilm_on_sst2(minilm_dir, shared_data, tmp_path):
    """The real all-MiniLM-L6-v2 (30k WordPiece vocabulary) on real SST-2 dev sentences, the 60 first
    and the 10 longest; its fresh classification head is seeded, so the test is deterministic."""
    import torch

    from edgebert.models import load

    texts = read_texts(shared_data / "sst2" / "dev.tsv")
    texts = texts[:60] + sorted(texts, key=len)[-10:]
    torch.manual_seed(0)
    loaded = load(str(minilm_dir), label_names=["negative", "positive"])
    loaded.model.save_pretrained(tmp_path / "hf")
    loaded.tokenizer.save_pretrained(tmp_path / "hf")
    art = build_runtime_artifact(tmp_path / "hf", tmp_path / "art")
    clf = Classifier.load(art, threads=2)
    ref, _ = hf_probs(tmp_path / "hf", texts)
    got = clf.predict_proba(texts)
    assert (got.argmax(1) == ref.argmax(1)).all()
    np.testing.assert_allclose(got, ref, atol=1e-4)
    onnx_ref = ort_logits_hf_tokens(art / "model" / "model.onnx", tmp_path / "hf", texts)
    np.testing.assert_allclose(clf.logits(texts), onnx_ref, atol=1e-4)


def test_max_length_truncates_like_the_hf_tokenizer(tiny_classifier_dir, tiny_artifact_dir):
    long_text = " ".join(POSITIVE) * 3
    short = Classifier.load(tiny_artifact_dir, max_length=8)
    assert short.max_length == 8
    ref = ort_logits_hf_tokens(tiny_artifact_dir / "model" / "model.onnx", tiny_classifier_dir, [long_text],
                               max_length=8)
    np.testing.assert_allclose(short.logits([long_text]), ref, atol=1e-5)
    full = Classifier.load(tiny_artifact_dir)
    assert not np.allclose(full.logits([long_text]), ref, atol=1e-3)  # 128 tokens: a different input
    with pytest.raises(ConfigError, match="max_length"):
        Classifier.load(tiny_artifact_dir, max_length=1)


def test_max_length_above_the_models_position_table_is_refused_at_load(tiny_artifact_dir, tmp_path):
    assert json.loads((tiny_artifact_dir / "manifest.json").read_text())["deploy"]["model_max_length"] == 128
    assert Classifier.load(tiny_artifact_dir, max_length=128).max_length == 128
    with pytest.raises(ConfigError, match=r"max_length 256 is above the 128 tokens the model .* takes.*"
                                          r"Use --max-length 128 or less"):
        Classifier.load(tiny_artifact_dir, max_length=256)
    art = copy_artifact(tiny_artifact_dir, tmp_path / "art")
    edit_manifest(art, max_length=1024)  # a manifest whose own cap the model cannot take
    with pytest.raises(RuntimeLoadError, match=r"deploy.max_length 1024 is above the 128 tokens"):
        Classifier.load(art)
    runner = CliRunner()
    for command in (["predict", str(art), "a text"], ["serve", str(tiny_artifact_dir), "--max-length", "1024"]):
        res = runner.invoke(main, command)
        assert_clean_error(res, "above the 128 tokens")
        assert res.exit_code == 2 and res.output.count("\n") == 1, res.output


def test_threads_reach_the_session(tiny_artifact_dir):
    clf = Classifier.load(tiny_artifact_dir, threads=1)
    assert clf._backend.session.get_session_options().intra_op_num_threads == 1
    assert clf.info()["threads"] == 1
    with pytest.raises(ConfigError, match="threads"):
        Classifier.load(tiny_artifact_dir, threads=0)


def test_threshold_from_manifest_argument_and_off(tiny_artifact_dir, tmp_path):
    art = copy_artifact(tiny_artifact_dir, tmp_path / "art")
    scores = Classifier.load(art).predict_proba(MIXED).max(1)
    cut = float(np.median(scores))
    edit_manifest(art, threshold=cut, unknown_label="none-of-these")
    clf = Classifier.load(art)
    assert clf.threshold == cut and clf.unknown_label == "none-of-these"
    preds = clf.predict(MIXED)
    assert [p.abstained for p in preds] == (scores < cut).tolist()
    assert any(p.abstained for p in preds) and not all(p.abstained for p in preds)
    for p in preds:
        assert p.label == ("none-of-these" if p.abstained else clf.labels[p.index])
    assert not any(p.abstained for p in Classifier.load(art, threshold=0).predict(MIXED))
    assert all(p.label == "?" for p in Classifier.load(art, threshold=1.0, unknown_label="?").predict(MIXED)
               if p.score < 1.0)
    with pytest.raises(ConfigError, match="between 0 and 1"):
        Classifier.load(art, threshold=1.5)
    with pytest.raises(ConfigError, match="also one of the model's labels"):
        Classifier.load(art, threshold=0.5, unknown_label="positive")


# -- formats and folder layouts -----------------------------------------------------------------

@pytest.fixture(scope="module")
def expected_probs(tiny_artifact_dir):
    return Classifier.load(tiny_artifact_dir).predict_proba(MIXED)


def test_int8_and_ort_artifacts(tiny_classifier_dir, tmp_path, expected_probs):
    int8 = Classifier.load(build_runtime_artifact(tiny_classifier_dir, tmp_path / "int8", int8=True))
    assert (int8.predict_proba(MIXED).argmax(1) == expected_probs.argmax(1)).mean() >= 0.9
    ort_art = build_runtime_artifact(tiny_classifier_dir, tmp_path / "ort", fmt="ort")
    assert not list((ort_art / "model").glob("*.onnx"))
    clf = Classifier.load(ort_art)
    assert clf.layout.model.suffix == ".ort" and clf.format == "onnxruntime"
    np.testing.assert_allclose(clf.predict_proba(MIXED), expected_probs, atol=1e-4)


def test_static_shape_graph_is_padded_to_its_shape(tiny_artifact_dir, tmp_path):
    """A graph with a fixed (batch 2, sequence 16) input shape: batches are filled up and padded to it,
    texts truncated to 16 tokens; results equal the dynamic graph's at max_length 16."""
    import onnx

    art = copy_artifact(tiny_artifact_dir, tmp_path / "static")
    model = onnx.load(str(art / "model" / "model.onnx"))
    for graph_input in model.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        dims[0].dim_value, dims[1].dim_value = 2, 16
    onnx.save(model, str(art / "model" / "model.onnx"))
    clf = Classifier.load(art, batch_size=8)
    assert (clf.max_length, clf.batch_size) == (16, 2)
    texts = MIXED[:5]  # an odd count: the last batch holds one real text
    ref = Classifier.load(tiny_artifact_dir, max_length=16).predict_proba(texts)
    np.testing.assert_allclose(clf.predict_proba(texts), ref, atol=1e-5)


def test_torchscript_artifact_and_missing_torch(tiny_classifier_dir, tmp_path, expected_probs, monkeypatch):
    art = build_runtime_artifact(tiny_classifier_dir, tmp_path / "pt", fmt="torchscript")
    clf = Classifier.load(art, threads=1)
    assert clf.format == "torchscript"
    np.testing.assert_allclose(clf.predict_proba(MIXED), expected_probs, atol=1e-5)
    monkeypatch.setitem(sys.modules, "torch", None)  # as on a runtime-only install
    with pytest.raises(MissingDependencyError, match="torch is not installed.*ONNX"):
        Classifier.load(art)


def test_tensorrt_engine_without_tensorrt(tiny_artifact_dir, tmp_path):
    import importlib.util

    if importlib.util.find_spec("tensorrt") is not None:
        pytest.skip("TensorRT is installed here")
    art = copy_artifact(tiny_artifact_dir, tmp_path / "trt")
    (art / "model" / "model.plan").write_bytes(b"not an engine")
    edit_manifest(art, model="model/model.plan", format="tensorrt")
    with pytest.raises(MissingDependencyError, match=r"TensorRT is not installed.*edgebert\[tensorrt\]"):
        Classifier.load(art)


def test_folder_without_deploy_and_model_file_path(tiny_artifact_dir, tmp_path, expected_probs):
    art = copy_artifact(tiny_artifact_dir, tmp_path / "old")
    manifest = json.loads((art / "manifest.json").read_text())
    del manifest["deploy"]
    (art / "manifest.json").write_text(json.dumps(manifest))
    clf = Classifier.load(art)
    assert clf.layout.model == art / "model" / "model.onnx" and clf.threshold is None
    np.testing.assert_allclose(clf.predict_proba(MIXED), expected_probs, atol=1e-6)
    # the model file itself: tokenizer/ and labels.json one folder up
    direct = Classifier.load(tiny_artifact_dir / "model" / "model.onnx")
    np.testing.assert_allclose(direct.predict_proba(MIXED), expected_probs, atol=1e-6)
    # a flat folder (no manifest, model at the root, labels from config.json id2label)
    flat = tmp_path / "flat"
    flat.mkdir()
    shutil.copy(tiny_artifact_dir / "model" / "model.onnx", flat / "classifier.onnx")
    for f in (tiny_artifact_dir / "tokenizer").iterdir():
        shutil.copy(f, flat / f.name)
    (flat / "config.json").write_text(json.dumps({"id2label": {"1": "positive", "0": "negative"}}))
    layout = resolve_artifact(flat)
    assert layout.model.name == "classifier.onnx" and layout.labels == ("negative", "positive")
    assert layout.manifest is None and layout.max_length is None


def test_compress_deploy_block_threads_providers_and_paths(tiny_artifact_dir, tmp_path, expected_probs):
    """The deploy block `edgebert compress` writes: the target's threads and providers are defaults (a GPU
    provider this onnxruntime build lacks falls back to CPU); tokenizer and labels paths are followed."""
    art = copy_artifact(tiny_artifact_dir, tmp_path / "compressed")
    (art / "tokenizer").rename(art / "tok")
    (art / "labels.json").rename(art / "names.json")
    edit_manifest(art, runtime="onnxruntime", fallback_runtime=None, format="onnx", files=["model/model.onnx"],
                  tokenizer="tok/", labels="names.json", precision="fp32", threads=1,
                  providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    import onnxruntime

    gpu_build = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf = Classifier.load(art)
    assert clf.threads == 1 and clf._backend.session.get_session_options().intra_op_num_threads == 1
    if not gpu_build:  # the GPU target's provider is not here: said, not silent
        assert clf.info()["providers"] == ["CPUExecutionProvider"]
        assert clf.info()["provider"] == "CPUExecutionProvider"
        assert clf.info()["requested_providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
        fallbacks = [w for w in caught if issubclass(w.category, ProviderFallbackWarning)]
        assert len(fallbacks) == 1 and "CUDAExecutionProvider was requested but the model runs on " \
            "CPUExecutionProvider" in str(fallbacks[0].message)
        assert "not in this onnxruntime build" in clf.info()["provider_fallback"]
    np.testing.assert_allclose(clf.predict_proba(MIXED), expected_probs, atol=1e-6)
    assert Classifier.load(art, threads=2).threads == 2  # the caller's choice wins
    if not gpu_build:
        with pytest.raises(RuntimeLoadError, match="CUDAExecutionProvider"):  # asked for explicitly: required
            Classifier.load(art, providers=["CUDAExecutionProvider"])


def test_sentence_pairs_equal_the_full_stack(tiny_classifier_dir, tiny_artifact_dir):
    """(text, text_pair) through tokenizer.json's pair template: the same probabilities as transformers +
    PyTorch given the pairs, also where longest-first truncation cuts one or both sentences."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    firsts = MIXED
    seconds = list(reversed(MIXED))
    tok = AutoTokenizer.from_pretrained(tiny_classifier_dir)
    model = AutoModelForSequenceClassification.from_pretrained(tiny_classifier_dir).eval()
    for max_length in (128, 12):
        clf = Classifier.load(tiny_artifact_dir, max_length=max_length, batch_size=3)
        enc = tok(firsts, seconds, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        assert (enc["token_type_ids"] == 1).any()
        with torch.no_grad():
            ref = torch.softmax(model(**enc).logits, -1).numpy()
        np.testing.assert_allclose(clf.predict_proba(firsts, seconds), ref, atol=1e-5)
        one = clf.predict(firsts[0], seconds[0])
        assert isinstance(one, Prediction) and one.index == int(ref[0].argmax())
        assert not np.allclose(clf.predict_proba(firsts), ref, atol=1e-3)  # the second sentence counts
    with pytest.raises(DataError, match="shaped like texts"):
        clf.predict(["a", "b"], ["c"])
    with pytest.raises(DataError, match="shaped like texts"):
        clf.predict("a", ["c"])


def test_deploy_text_pair_says_whether_the_second_sentence_is_needed(tiny_artifact_dir, tmp_path):
    pairs = copy_artifact(tiny_artifact_dir, tmp_path / "pairs")
    edit_manifest(pairs, text_pair=True)
    clf = Classifier.load(pairs)
    assert clf.text_pair is True and clf.info()["text_pair"] is True
    with pytest.raises(DataError, match="classifies sentence pairs"):
        clf.predict("i love it")
    assert clf.predict("the movie", "i love it").label in clf.labels
    single = copy_artifact(tiny_artifact_dir, tmp_path / "single")
    edit_manifest(single, text_pair=False)
    with pytest.raises(DataError, match="classifies single texts"):
        Classifier.load(single).predict("the movie", "i love it")
    bad = copy_artifact(tiny_artifact_dir, tmp_path / "bad")
    edit_manifest(bad, text_pair="yes")
    with pytest.raises(RuntimeLoadError, match="deploy.text_pair must be true or false"):
        Classifier.load(bad)


@pytest.mark.parametrize("texts,pairs,message", [
    ("", None, "the text is empty"),
    ("   \t\n", None, "the text is empty"),
    (["i love it", ""], None, "text 1 is empty"),
    (["i love it"], [" "], "text pair 0 is empty"),
])
def test_empty_texts_are_refused(tiny_artifact_dir, texts, pairs, message):
    """A model asked about nothing still answers some label: the runtime refuses instead."""
    clf = Classifier.load(tiny_artifact_dir)
    for call in (clf.predict, clf.predict_proba, clf.logits):
        with pytest.raises(DataError, match=message):
            call(texts, pairs)


def test_provider_that_fails_to_start_is_reported(tiny_artifact_dir, monkeypatch):
    """onnxruntime drops a provider that is in its build but cannot start (no CUDA libraries, no GPU) and
    runs on the CPU: the classifier compares what it asked for with what the session uses and says so."""
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("a GPU build: CUDA may really start here")
    real = onnxruntime.get_available_providers
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", *real()])
    with pytest.warns(ProviderFallbackWarning, match="CUDAExecutionProvider failed to start"):
        clf = Classifier.load(tiny_artifact_dir, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert clf.provider == "CPUExecutionProvider"
    assert clf.info()["requested_providers"] == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert "failed to start" in clf.info()["provider_fallback"]


# -- errors ---------------------------------------------------------------------------------------

def test_load_errors_are_typed_and_say_what_to_do(tiny_artifact_dir, tmp_path):
    with pytest.raises(ModelNotFoundError, match="does not exist"):
        Classifier.load(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RuntimeLoadError, match="holds no model"):
        Classifier.load(empty)

    two = copy_artifact(tiny_artifact_dir, tmp_path / "two")
    shutil.copy(two / "model" / "model.onnx", two / "model" / "other.onnx")
    (two / "model" / "model.onnx").rename(two / "model" / "first.onnx")
    edit_manifest(two, model=None)
    with pytest.raises(RuntimeLoadError, match="several model files"):
        Classifier.load(two)

    cases = {
        "no tokenizer": (lambda a: shutil.rmtree(a / "tokenizer"), "No tokenizer.json"),
        "labels mismatch": (lambda a: (a / "labels.json").write_text('{"labels": ["a", "b", "c"]}'),
                            "does not fit its labels"),
        "duplicate labels": (lambda a: (a / "labels.json").write_text('{"labels": ["a", "a"]}'), "more than once"),
        "corrupt model": (lambda a: (a / "model" / "model.onnx").write_bytes(b"garbage"), "onnxruntime cannot load"),
        "bad manifest": (lambda a: (a / "manifest.json").write_text("{not json"), "Cannot read the manifest"),
        "deploy.model missing": (lambda a: edit_manifest(a, model="model/gone.onnx"), "not a file"),
        "bad max_length": (lambda a: edit_manifest(a, max_length="long"), "deploy.max_length must be int"),
    }
    for name, (damage, message) in cases.items():
        art = copy_artifact(tiny_artifact_dir, tmp_path / name.replace(" ", "-"))
        damage(art)
        with pytest.raises(RuntimeLoadError, match=message):
            Classifier.load(art)

    with pytest.raises(RuntimeLoadError, match="not available"):
        Classifier.load(tiny_artifact_dir, providers=["NoSuchExecutionProvider"])
    clf = Classifier.load(tiny_artifact_dir)
    with pytest.raises(DataError, match="text 1 is a int"):
        clf.predict(["ok", 3])
    with pytest.raises(DataError, match="string or a sequence"):
        clf.predict(None)


def test_no_torch_or_transformers_in_a_fresh_process(tiny_artifact_dir):
    code = (
        "import sys\n"
        "import edgebert.runtime as r\n"
        f"c = r.Classifier.load({str(tiny_artifact_dir)!r})\n"
        "p = c.predict(['i love this movie', 'hate it'])\n"
        "assert [x.label for x in p] == ['positive', 'negative'], p\n"
        "leaked = [m for m in ('torch', 'transformers') if m in sys.modules]\n"
        "assert not leaked, leaked\n"
        "print('ok')\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr


def test_predict_cli_works_with_torch_and_transformers_blocked(tiny_artifact_dir):
    """`edgebert predict` in a process where importing torch or transformers fails."""
    proc = subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, "predict", str(tiny_artifact_dir),
                           "i love this movie", "--json"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["label"] == "positive"


#: built by tests/data/build_tiny_artifact.py; what tests/runtime_install_check.sh runs in a torch-free install
COMMITTED_ARTIFACT = REPO / "tests" / "data" / "tiny-artifact"


def test_committed_tiny_artifact_loads_with_the_current_runtime():
    """The committed artifact still loads (a layout change must rebuild it) and classifies the tiny task."""
    clf = Classifier.load(COMMITTED_ARTIFACT)
    assert list(clf.labels) == ["negative", "positive"]
    expected = ["positive"] * len(POSITIVE) + ["negative"] * len(NEGATIVE)
    assert [p.label for p in clf.predict(POSITIVE + NEGATIVE)] == expected
    size = sum(f.stat().st_size for f in COMMITTED_ARTIFACT.rglob("*") if f.is_file())
    assert size < 400_000, f"the committed artifact grew to {size} bytes"


# -- input files ----------------------------------------------------------------------------------

def test_read_texts_formats(tmp_path):
    (tmp_path / "a.txt").write_text("first text\n\n  second, with comma  \n")
    assert read_texts(tmp_path / "a.txt") == ["first text", "second, with comma"]
    (tmp_path / "b.csv").write_text('text\n"hello, world"\nplain\n')
    assert read_texts(tmp_path / "b.csv") == ["hello, world", "plain"]
    (tmp_path / "c.csv").write_text("id,utterance,label\n1,lost card,x\n2,top up,y\n")
    assert read_texts(tmp_path / "c.csv") == ["lost card", "top up"]
    assert read_texts(tmp_path / "c.csv", text_column="label") == ["x", "y"]
    (tmp_path / "d.tsv").write_text('sentence\tlabel\na "quoted" film\t1\n')
    assert read_texts(tmp_path / "d.tsv") == ['a "quoted" film']
    (tmp_path / "e.jsonl").write_text('{"text": "one"}\n\n{"text": "two", "id": 2}\n')
    assert read_texts(tmp_path / "e.jsonl") == ["one", "two"]


@pytest.mark.parametrize("name,content,message", [
    ("x.csv", "id,label\n1,a\n", "no text column"),
    ("x.jsonl", '{"text": "a"}\n[1]\n', "x.jsonl:2: expected a JSON object"),
    ("x.jsonl", '{"text": "a"}\n{"text": null}\n', "x.jsonl:2: the 'text' field must be a string"),
    ("x.jsonl", '{"text": "a"}\n{oops\n', "x.jsonl:2: malformed JSON"),
    ("x.csv", "text,label\na,b,c\n", "x.csv:2: expected 2 fields"),
    ("x.xlsx", "", "unsupported input file type"),
])
def test_read_texts_errors(tmp_path, name, content, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=message):
        read_texts(tmp_path / name)


def test_read_inputs_sentence_pairs(tmp_path):
    (tmp_path / "p.csv").write_text("id,sentence1,sentence2,label\n1,a man plays,someone plays,1\n2,b,c,0\n")
    assert read_inputs(tmp_path / "p.csv", pairs=True) == (["a man plays", "b"], ["someone plays", "c"])
    assert read_inputs(tmp_path / "p.csv", text_column="sentence1", pairs=True)[1] == ["someone plays", "c"]
    assert read_inputs(tmp_path / "p.csv", text_column="sentence2", text_pair_column="sentence1") == (
        ["someone plays", "c"], ["a man plays", "b"])
    (tmp_path / "q.jsonl").write_text('{"question": "where?", "sentence": "here."}\n')
    assert read_inputs(tmp_path / "q.jsonl", pairs=True) == (["where?"], ["here."])
    (tmp_path / "r.tsv").write_text("premise\thypothesis\nx\ty\n")
    assert read_inputs(tmp_path / "r.tsv", pairs=True) == (["x"], ["y"])


@pytest.mark.parametrize("name,content,kwargs,message", [
    ("p.csv", "text,label\na,b\n", {"pairs": True}, "no pair of text columns"),
    ("p.csv", "text,other\na,b\n", {"pairs": True, "text_column": "text"}, "--text-pair-column"),
    ("p.csv", "a,b\nx,y\n", {"text_column": "a", "text_pair_column": "a"}, "both the text and the text pair"),
    ("p.txt", "a\n", {"pairs": True}, "needs a .csv / .tsv / .jsonl input"),
    ("e.csv", "text,label\nfine,a\n  ,b\n", {}, "e.csv:3: the 'text' field is empty"),
    ("e.tsv", "sentence1\tsentence2\nx\ty\nx\t\n", {"pairs": True}, "e.tsv:3: the 'sentence2' field is empty"),
    ("e.jsonl", '{"text": "a"}\n{"text": ""}\n', {}, "e.jsonl:2: the 'text' field is empty"),
])
def test_read_inputs_errors_name_the_line(tmp_path, name, content, kwargs, message):
    (tmp_path / name).write_text(content)
    with pytest.raises(DataError, match=message):
        read_inputs(tmp_path / name, **kwargs)


# -- edgebert predict -----------------------------------------------------------------------------

def test_predict_cli_table_json_and_input_file(tiny_artifact_dir, tmp_path):
    runner = CliRunner()
    res = runner.invoke(main, ["predict", str(tiny_artifact_dir), "i love this movie", "hate it"])
    assert res.exit_code == 0, res.output
    rows = res.output.strip().splitlines()
    assert rows[0].split() == ["label", "score", "text"]
    assert rows[1].split()[0] == "positive" and rows[1].endswith("i love this movie")
    assert rows[2].split()[0] == "negative"

    inp = tmp_path / "in.jsonl"
    inp.write_text('{"text": "great film and fun"}\n{"text": "awful awful movie"}\n')
    res = runner.invoke(main, ["predict", str(tiny_artifact_dir), "--input", str(inp), "--json", "--threads", "1"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert [r["text"] for r in out] == ["great film and fun", "awful awful movie"]
    assert [r["label"] for r in out] == ["positive", "negative"]
    assert set(out[0]) == {"text", "label", "score", "index", "abstained", "provider"}
    assert out[0]["provider"] == "CPUExecutionProvider"  # the provider that ran the model

    res = runner.invoke(main, ["predict", str(tiny_artifact_dir), "--input", "-", "--threshold", "1", "--json"],
                        input="i love it\n\nbad movie\n")
    assert res.exit_code == 0, res.output
    assert [r["label"] for r in json.loads(res.output)] == ["unknown", "unknown"]


def test_predict_cli_errors(tiny_artifact_dir, tmp_path):
    runner = CliRunner()
    assert_clean_error(runner.invoke(main, ["predict", str(tiny_artifact_dir)]), "Give texts to classify")
    assert_clean_error(runner.invoke(main, ["predict", str(tiny_artifact_dir), "a", "--input", "x.txt"]),
                       "not both")
    assert_clean_error(runner.invoke(main, ["predict", str(tmp_path / "missing"), "a"]), "does not exist")
    assert_clean_error(runner.invoke(main, ["predict", str(tiny_artifact_dir), "--input", str(tmp_path / "no.txt")]),
                       "input file not found")
    assert_clean_error(runner.invoke(main, ["predict", str(tiny_artifact_dir), "a", "--threshold", "2"]),
                       "--threshold")


def test_predict_cli_refuses_empty_texts_naming_where(tiny_artifact_dir, tmp_path):
    runner = CliRunner()
    for args, where in ((["i love it", ""], "TEXT argument 2 is empty"), (["   "], "TEXT argument 1 is empty")):
        res = runner.invoke(main, ["predict", str(tiny_artifact_dir), *args])
        assert_clean_error(res, where)
        assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1
    holes = tmp_path / "holes.csv"
    holes.write_text("text\ni love it\n\nhate it\n\"  \"\n", encoding="utf-8")  # a blank line is no row
    res = runner.invoke(main, ["predict", str(tiny_artifact_dir), "--input", str(holes)])
    assert_clean_error(res, "holes.csv:5:", "'text' field is empty")
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1


def test_predict_cli_says_when_the_provider_falls_back(tiny_artifact_dir, tmp_path):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("a GPU build: CUDA may really run here")
    art = copy_artifact(tiny_artifact_dir, tmp_path / "gpu-target")
    edit_manifest(art, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    res = CliRunner().invoke(main, ["predict", str(art), "i love it", "--json"])
    assert res.exit_code == 0, res.output
    assert "Warning:" in res.stderr and "CUDAExecutionProvider was requested but the model runs on " \
        "CPUExecutionProvider" in res.stderr and "pip install onnxruntime-gpu" in res.stderr
    assert json.loads(res.stdout)[0]["provider"] == "CPUExecutionProvider"
