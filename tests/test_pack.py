"""edgebert pack: the deployable part of an artifact, in one file that runs where it is unpacked."""

from __future__ import annotations

import json
import tarfile

import pytest
from click.testing import CliRunner

from edgebert.cli.main import main
from tests.conftest import assert_clean_error


@pytest.fixture(scope="module")
def compressed(tmp_path_factory, tiny_classifier_dir, tiny_sentiment_dir):
    from edgebert.pipeline import compress

    d = tmp_path_factory.mktemp("pack")
    (d / "r.yaml").write_text("name: r\nstages:\n  - kind: export-onnx\n    fuse: false\n", encoding="utf-8")
    compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=d / "art", recipe=d / "r.yaml",
             progress=False)
    return d / "art"


def test_pack_holds_only_what_the_device_runs_and_runs_unpacked(compressed, tmp_path):
    from edgebert.runtime import Classifier

    out = tmp_path / "ship.tar.gz"
    result = CliRunner().invoke(main, ["pack", str(compressed), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "edgebert predict art" in result.output
    with tarfile.open(out) as tar:
        names = tar.getnames()
        tar.extractall(tmp_path / "device", filter="data")
    assert all(n.startswith("art/") for n in names)
    tops = {n.split("/")[1] for n in names}
    assert tops == {"manifest.json", "labels.json", "model", "tokenizer"}  # no stages/, no report, no lock
    texts = ["i love it", "this is bad"]
    here = Classifier.load(compressed).predict(texts)
    there = Classifier.load(tmp_path / "device" / "art").predict(texts)
    assert [p.label for p in here] == [p.label for p in there]
    assert_clean_error(CliRunner().invoke(main, ["pack", str(compressed), "--out", str(out)]), "exists", "--overwrite")
    again = CliRunner().invoke(main, ["pack", str(compressed), "--out", str(out), "--overwrite"])
    assert again.exit_code == 0, again.output


def test_pack_refuses_a_folder_that_is_not_a_finished_artifact(compressed, tmp_path):
    import shutil

    assert_clean_error(CliRunner().invoke(main, ["pack", str(tmp_path)]), "not an edgebert artifact folder")
    unfinished = tmp_path / "unfinished"
    shutil.copytree(compressed, unfinished)
    manifest = json.loads((unfinished / "manifest.json").read_text())
    (unfinished / "manifest.json").write_text(json.dumps({**manifest, "status": "running"}))
    assert_clean_error(CliRunner().invoke(main, ["pack", str(unfinished)]), "has not finished", "edgebert compress")
    assert not (tmp_path / "unfinished.tar.gz").exists()


def test_compress_says_what_to_ship(tiny_classifier_dir, tiny_sentiment_dir, tmp_path):
    (tmp_path / "r.yaml").write_text("name: r\nstages:\n  - kind: export-onnx\n    fuse: false\n", encoding="utf-8")
    result = CliRunner().invoke(main, ["compress", "--model", str(tiny_classifier_dir), "--data",
                                       str(tiny_sentiment_dir), "--out", str(tmp_path / "a"), "--recipe",
                                       str(tmp_path / "r.yaml")])
    assert result.exit_code == 0, result.output
    assert "Ship to the device: model/, tokenizer/, labels.json, manifest.json" in result.output
    assert f"edgebert pack {tmp_path / 'a'}" in result.output


def test_pack_into_a_folder_it_cannot_write_is_a_clean_error(compressed, read_only_dir):
    result = CliRunner().invoke(main, ["pack", str(compressed), "--out", str(read_only_dir / "a.tar.gz")])
    assert_clean_error(result, str(read_only_dir))
    assert list(read_only_dir.iterdir()) == []
