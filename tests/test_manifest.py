"""The typed manifest (edgebert/manifest.py): committed manifests round-trip unchanged, the artifact's
identity is spelled once, unreadable manifests are typed errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from edgebert.errors import ConfigError, ManifestError, OutputExistsError
from edgebert.manifest import (ARTIFACT_KIND, SCHEMA_VERSION, Deploy, Manifest, StageRecord, engine_precision,
                               is_artifact, read_manifest, write_manifest)

REPO = Path(__file__).resolve().parents[1]


def _committed_manifests() -> list[str]:
    listed = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return sorted(p for p in listed if p == "tests/data/tiny-artifact/manifest.json"
                  or (p.startswith("benchmarks/") and p.endswith("/manifest.json")))


def test_every_committed_manifest_is_found():
    found = _committed_manifests()
    assert "tests/data/tiny-artifact/manifest.json" in found
    assert any(p.startswith("benchmarks/") for p in found), found


@pytest.mark.parametrize("rel", _committed_manifests())
def test_a_committed_manifest_round_trips_without_losing_or_changing_a_key(rel, tmp_path):
    original = (REPO / rel).read_text(encoding="utf-8")
    manifest = read_manifest(REPO / rel)
    assert manifest.is_artifact and all(isinstance(s, StageRecord) for s in manifest.stages)
    write_manifest(tmp_path / "manifest.json", manifest)
    again = (tmp_path / "manifest.json").read_text(encoding="utf-8")
    # same keys, values and value types (an int stays an int), and even the same order
    assert json.dumps(json.loads(again), sort_keys=True) == json.dumps(json.loads(original), sort_keys=True)
    assert again == original


def test_only_the_keys_a_manifest_has_are_written(tmp_path):
    """Unset fields are not written as nulls, and a manifest without a kind does not gain one."""
    bare = Manifest.model_validate({"deploy": {"model": "model/model.onnx"}, "note": "kept"})
    assert not bare.is_artifact
    assert bare.to_dict() == {"deploy": {"model": "model/model.onnx"}, "note": "kept"}
    new = Manifest.new(status="running", stages=[])
    new.stages.append(StageRecord(index=1, kind="export-onnx"))
    new.deploy = Deploy(model="model/model.onnx")
    assert new.to_dict() == {"schema_version": SCHEMA_VERSION, "kind": ARTIFACT_KIND, "status": "running",
                             "stages": [{"index": 1, "kind": "export-onnx"}], "deploy": {"model": "model/model.onnx"}}
    write_manifest(tmp_path, new)  # a folder: its manifest.json
    assert is_artifact(tmp_path) and read_manifest(tmp_path).to_dict() == new.to_dict()


def test_unreadable_manifests_are_typed_errors(tmp_path):
    with pytest.raises(ManifestError, match="cannot be read") as missing:
        read_manifest(tmp_path / "manifest.json")
    assert missing.value.reason == "missing" and isinstance(missing.value, ConfigError)
    (tmp_path / "manifest.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(ManifestError, match="is not valid JSON") as garbled:
        read_manifest(tmp_path)
    assert garbled.value.reason == "garbled"
    for data, where in (([1, 2], "list"), ({"stages": [{"index": "one"}]}, "stages.0.index"),
                        ({"deploy": {"max_length": "128"}}, "deploy.max_length")):
        (tmp_path / "manifest.json").write_text(json.dumps(data), encoding="utf-8")
        with pytest.raises(ManifestError, match=where) as shape:
            read_manifest(tmp_path)
        assert shape.value.reason == "shape"
        assert not is_artifact(tmp_path)


def test_engine_precision_reads_the_last_engine_build():
    stages = [{"kind": "build-tensorrt", "metrics": {"precision": "fp16"}},
              {"kind": "build-tensorrt", "metrics": {"precision": "int8"}}]
    assert engine_precision({"stages": stages}) == "int8"
    assert engine_precision(Manifest.model_validate({"stages": stages[:1]})) == "fp16"
    assert engine_precision({"stages": [{"kind": "export-onnx"}]}) is None


def test_the_artifact_identity_is_spelled_once():
    """What makes a folder an edgebert artifact lives in edgebert/manifest.py only."""
    spelled = [str(p.relative_to(REPO)) for p in sorted((REPO / "edgebert").rglob("*.py"))
               if '"edgebert-artifact"' in p.read_text(encoding="utf-8")]
    assert spelled == ["edgebert/manifest.py"]


def test_compress_into_a_folder_with_a_garbled_manifest_is_refused(tiny_classifier_dir, tiny_sentiment_dir,
                                                                     tmp_path):
    from edgebert.pipeline import compress

    out = tmp_path / "art"
    out.mkdir()
    (out / "manifest.json").write_text("{half", encoding="utf-8")
    (tmp_path / "r.yaml").write_text("name: r\nstages:\n  - kind: export-onnx\n    fuse: false\n", encoding="utf-8")
    for overwrite in (False, True):
        with pytest.raises(OutputExistsError, match="is not valid JSON .*: choose another --out, or delete that folder"):
            compress(str(tiny_classifier_dir), "cpu", data=str(tiny_sentiment_dir), out=out,
                     recipe=tmp_path / "r.yaml", progress=False, overwrite=overwrite)
    assert (out / "manifest.json").read_text(encoding="utf-8") == "{half"  # never deleted
