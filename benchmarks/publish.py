"""Where a benchmark script writes its results: ``runs/benchmarks/`` unless ``--publish`` is given.

``benchmarks/results/`` holds the committed records that the README, the docs and the walk-through
cite. Trying a script, or following the walk-through, must not overwrite them with another
machine's or another artifact's figures, so the scripts write under ``runs/`` (ignored by git) by
default; ``--publish`` writes into ``benchmarks/results/`` to update a record on purpose.
"""

from __future__ import annotations

import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED = ROOT / "benchmarks" / "results"
LOCAL = ROOT / "runs" / "benchmarks"


def add_publish_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--publish", action="store_true",
                    help="write the results into benchmarks/results/ (the committed records) instead of "
                         "runs/benchmarks/")


def results_dir(publish: bool) -> Path:
    """The folder results go to (created)."""
    out = PUBLISHED if publish else LOCAL
    out.mkdir(parents=True, exist_ok=True)
    return out
