"""Stage keys, run identity and the stage cache shared between compress runs (edgebert/cache.py); the
pipeline's use of them is tested in tests/test_pipeline.py."""

from __future__ import annotations

import os

from edgebert import cache


def _stage(tmp_path, name="s", text="weights"):
    folder = tmp_path / name
    folder.mkdir()
    (folder / "model.bin").write_text(text)
    from edgebert.artifact import sha256_tree

    return folder, {"input_sha256": "in-1", "output_sha256": sha256_tree(folder), "metrics": {"path": str(folder)}}


def test_an_entry_is_taken_only_for_the_same_input(tmp_path):
    """A stage before it that ran again may have made another input (training is not bit-reproducible)."""
    folder, record = _stage(tmp_path)
    c = tmp_path / "cache"
    cache.put(c, "key", 3, folder, record)
    assert cache.take(c, "key", 3, tmp_path / "other-input", "in-2") is None
    assert not (tmp_path / "other-input").exists()
    got = cache.take(c, "key", 3, tmp_path / "taken", "in-1")
    assert got["metrics"]["path"] == str(tmp_path / "taken") and got["taken_from"] == str(folder)
    assert os.path.samefile(folder / "model.bin", tmp_path / "taken" / "model.bin")
    assert cache.take(c, "key", 4, tmp_path / "t4", "in-1") is None  # another position: another seed


def test_a_second_fill_keeps_the_first_entry_and_a_changed_entry_is_not_used(tmp_path):
    first, record = _stage(tmp_path, "a", "one")
    second, record2 = _stage(tmp_path, "b", "two")
    c = tmp_path / "cache"
    cache.put(c, "key", 1, first, record)
    entry = c / cache.entry_name("key", 1)
    cache.put(c, "key", 1, second, record2)  # a run that filled it meanwhile: the first entry stays
    assert (entry / "model.bin").read_text() == "one"
    assert [p.name for p in c.iterdir()] == [entry.name]  # no staging folder left behind
    (first / "model.bin").write_text("edited")  # the same file as the entry's (a hard link)
    assert cache.take(c, "key", 1, tmp_path / "t", "in-1") is None and not (tmp_path / "t").exists()


def test_a_cache_anyone_may_write_to_is_not_used(tmp_path):
    c = tmp_path / "cache"
    assert cache.usable(c) is None  # absent: it will be made
    c.mkdir()
    assert cache.usable(c) is None
    c.chmod(0o777)
    assert "anyone may write" in cache.usable(c)


def test_a_stage_revision_changes_the_key_only_where_the_output_changed():
    """distill's row order changed for seeds other than 0: those keys change (a resumed run redoes the
    stage), seed 0's key stays, so published seed-0 runs still resume without work."""
    from edgebert.cache import stage_key
    from edgebert.stages.registry import get_stage

    stage = get_stage("distill")
    seed0 = stage.config(seed=0)
    seed1 = stage.config(seed=1)
    assert stage.revision(seed0) is None
    assert stage_key("prev", seed0, None, stage.revision(seed0)) == stage_key("prev", seed0)
    assert stage.revision(seed1)
    assert stage_key("prev", seed1, None, stage.revision(seed1)) != stage_key("prev", seed1)


def test_a_field_added_later_changes_the_key_only_when_set():
    """quantize's share_target_budget came after artifacts were keyed: at its default the key is the one
    the config had without it (they resume); set to false, another key."""
    import hashlib
    import json

    from edgebert.cache import stage_key
    from edgebert.stages.quantize import QuantizeConfig

    default = QuantizeConfig()
    before = {k: v for k, v in default.model_dump(mode="json").items() if k != "share_target_budget"}
    old_key = hashlib.sha256(f"prev\nquantize\n{json.dumps(before, sort_keys=True)}".encode()).hexdigest()
    assert stage_key("prev", default) == old_key
    assert stage_key("prev", QuantizeConfig(share_target_budget=False)) != old_key


def test_a_hub_model_is_identified_by_its_cached_revision(monkeypatch):
    import huggingface_hub

    cached = {"abc": "/cache/models--org--m/snapshots/abc/config.json"}
    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda repo, name: cached["abc"])
    assert cache.model_identity("org/m") == ("org/m", "hub:org/m@abc")
    cached["abc"] = "/cache/models--org--m/snapshots/def/config.json"  # the model was updated on the hub
    assert cache.model_identity("org/m") == ("org/m", "hub:org/m@def")
