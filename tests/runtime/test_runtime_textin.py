"""The torch-free runtime on text-in models (the tokenizer inside the graph): Classifier, `predict` and
`serve` pass strings, with the onnxruntime-extensions library registered."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import CLI_WITHOUT_TORCH, NEGATIVE, POSITIVE, REPO, assert_clean_error

from edgebert.cli import main
from edgebert.errors import DataError, MissingDependencyError
from edgebert.runtime import Classifier

pytest.importorskip("onnxruntime_extensions")


@pytest.fixture(scope="module")
def text_in_artifact(tmp_path_factory, tiny_artifact_dir):
    """The tiny sentiment artifact with its model made text-in (model/model-text.onnx, named by the
    manifest's deploy.model; the token-in model/model.onnx stays beside it)."""
    from edgebert.export.textin import make_text_in

    art = tmp_path_factory.mktemp("textin-artifact") / "art"
    shutil.copytree(tiny_artifact_dir, art)
    manifest = json.loads((art / "manifest.json").read_text())
    make_text_in(art / "model" / "model.onnx", art / "tokenizer", art / "model" / "model-text.onnx",
                 max_length=manifest["deploy"]["max_length"])
    manifest["deploy"]["model"] = "model/model-text.onnx"
    (art / "manifest.json").write_text(json.dumps(manifest))
    return art


def test_classifier_passes_strings_and_matches_the_token_in_model(text_in_artifact, tiny_artifact_dir):
    text_in = Classifier.load(text_in_artifact, threads=1, batch_size=3)  # several batches, sorted by length
    token_in = Classifier.load(tiny_artifact_dir, threads=1)
    assert text_in.text_in and not token_in.text_in
    assert text_in.info()["inputs"] == ["text"] and text_in.max_length == 128
    texts = POSITIVE + NEGATIVE + ["great film " * 100]  # the last one is truncated in the graph
    np.testing.assert_allclose(text_in.predict_proba(texts), token_in.predict_proba(texts), atol=1e-5)
    assert [p.label for p in text_in.predict(texts)] == [p.label for p in token_in.predict(texts)]
    assert text_in.predict("i love this movie").label == "positive"
    with pytest.raises(DataError, match="single texts"):
        text_in.predict(["a"], ["b"])


def test_predict_cli_on_a_text_in_artifact_without_torch(text_in_artifact):
    proc = subprocess.run([sys.executable, "-c", CLI_WITHOUT_TORCH, "predict", str(text_in_artifact),
                           "i love this movie", "awful film and boring", "--json"],
                          capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert [p["label"] for p in json.loads(proc.stdout)] == ["positive", "negative"]


def test_serve_on_a_text_in_artifact(text_in_artifact):
    testclient = pytest.importorskip("starlette.testclient")
    from edgebert.runtime import create_app

    clf = Classifier.load(text_in_artifact, threads=1)
    with testclient.TestClient(create_app(clf)) as client:
        r = client.post("/predict", json={"texts": ["i love this movie", "hate it"]})
        assert r.status_code == 200, r.text
        assert [p["label"] for p in r.json()["predictions"]] == ["positive", "negative"]


def test_without_onnxruntime_extensions_a_text_in_model_says_what_to_install(text_in_artifact, tiny_artifact_dir,
                                                                           monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime_extensions", None)  # import fails as if not installed
    with pytest.raises(MissingDependencyError, match=r"pip install 'edgebert\[textin\]'"):
        Classifier.load(text_in_artifact)
    assert Classifier.load(tiny_artifact_dir).predict("i love this movie").label == "positive"  # token-in: unaffected
    res = CliRunner().invoke(main, ["predict", str(text_in_artifact), "i love this movie"])
    assert_clean_error(res, "onnxruntime-extensions is not installed", "edgebert[textin]")
    assert res.exit_code == 2 and len(res.output.strip().splitlines()) == 1


def test_loading_a_text_in_model_imports_no_training_library(text_in_artifact):
    """The extensions library is found without importing the onnxruntime_extensions package, whose
    __init__ imports onnx, transformers and torch where installed (tens of seconds and hundreds of MB
    of cold start in predict / serve on a development machine)."""
    code = ("import sys\n"
            "from edgebert.runtime import Classifier\n"
            f"print(Classifier.load({str(text_in_artifact)!r}).predict('i love this movie').label)\n"
            "leaked = [m for m in ('torch', 'transformers', 'onnx', 'onnxruntime_extensions') if m in sys.modules]\n"
            "assert not leaked, leaked\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=REPO)
    assert proc.returncode == 0 and proc.stdout.strip() == "positive", proc.stderr
