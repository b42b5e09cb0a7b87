"""The stage keys recorded in the repository's committed artifact manifests recompute from their recorded
resolved configs: a config class that dumped other fields or values (a renamed field, a merged class, a
new default) would change every key, and existing artifact folders would no longer resume."""

import json
from pathlib import Path

import pytest

from edgebert.pipeline import _key
from edgebert.stages.registry import get_stage, parse_stage

ROOT = Path(__file__).resolve().parents[2]
# Every committed manifest of a compress run (the ones with keyed stages).
MANIFESTS = sorted(p for pattern in ("benchmarks/**/manifest.json", "tests/data/**/manifest.json")
                   for p in ROOT.glob(pattern)
                   if any("key" in s for s in json.loads(p.read_text()).get("stages", [])))
# Stages written before a field was added to their config: their recorded config dumps without it, so
# their key cannot recompute (a resume reruns them, as it did before this test existed).
WRITTEN_BEFORE_A_FIELD = {("cpu-3ep-banking77", "distill"): {"select"},
                          ("cpu-3ep-banking77", "quantize"): {"max_length"}}


def test_committed_manifests_found():
    assert len(MANIFESTS) >= 3, MANIFESTS


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.parent.name)
def test_recorded_stage_keys_recompute(path):
    stages = json.loads(path.read_text())["stages"]
    prev = None
    for record in stages:
        cfg = parse_stage(record["config"], f"{path.name}: stage {record['index']}")
        stage = get_stage(cfg.kind)
        dumped = cfg.model_dump(mode="json")
        # fields added later, at the default that leaves them out of the key (StageConfig.KEYED_FROM_DEFAULT)
        later = {f for f, d in type(cfg).KEYED_FROM_DEFAULT.items() if f not in record["config"] and dumped[f] == d}
        dumped = {k: v for k, v in dumped.items() if k not in later}
        added = set(dumped) - set(record["config"])
        assert added == WRITTEN_BEFORE_A_FIELD.get((path.parent.name, cfg.kind), set()), (path, cfg.kind)
        if not added:
            assert dumped == record["config"], (path, cfg.kind)
        # The first key chains from the run's inputs and library versions (not all recorded): check from stage 2.
        if prev is not None and not added:
            key = _key(prev, cfg, stage.host(cfg) if stage.host else None,
                       stage.revision(cfg) if stage.revision else None)
            assert key == record["key"], (path, record["index"], cfg.kind)
        prev = record["key"]
