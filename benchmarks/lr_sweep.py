"""Learning-rate sweep behind edgebert's fine-tuning defaults for compact encoders (MiniLM).

Fine-tunes the embedded all-MiniLM-L6-v2 on a stratified BANKING77 subset with several
(encoder, head) learning-rate pairs, everything else at edgebert's defaults, and writes the dev/test
accuracy of each to runs/benchmarks/lr_sweep.json (--publish: benchmarks/results/).

    python benchmarks/lr_sweep.py --rows 2000 --epochs 2
    python benchmarks/lr_sweep.py --rows 2000 --epochs 2 --pairs 5e-4:5e-3,3e-4:1e-3   # add points
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import tempfile
import time
from pathlib import Path

from publish import add_publish_option, results_dir  # run as a script: benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"

PAIRS = [(2e-5, 2e-5), (2e-5, 2e-4), (1e-4, 1e-4), (1e-4, 1e-3), (2e-4, 2e-3), (3e-4, 3e-3)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--pairs", default=None,
                    help="Comma-separated ENCODER:HEAD rates to run instead of the built-in list; "
                         "results are merged into an existing --out file")
    ap.add_argument("--out", default=None, help="result file [default: lr_sweep.json in runs/benchmarks/, "
                                                "or with --publish benchmarks/results/]")
    add_publish_option(ap)
    args = ap.parse_args()
    args.out = args.out or str(results_dir(args.publish) / "lr_sweep.json")
    pairs = PAIRS
    if args.pairs:
        pairs = [tuple(float(x) for x in p.split(":")) for p in args.pairs.split(",")]
    if not (DATA / "banking77").is_dir():
        sys.exit(f"BANKING77 not found at {DATA / 'banking77'}")

    from edgebert.data import load_dataset
    from edgebert.train import FinetuneConfig, finetune

    ds = load_dataset(DATA / "banking77", seed=0, max_rows=args.rows)
    previous = json.loads(Path(args.out).read_text()) if args.pairs and Path(args.out).is_file() else {}
    commands = previous.get("commands", [])
    rows = [r for r in previous.get("results", []) if (r["learning_rate"], r["head_learning_rate"]) not in pairs]
    for body, head in pairs:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            cfg = FinetuneConfig(learning_rate=body, head_learning_rate=head, epochs=args.epochs,
                                 patience=0, seed=0)
            res = finetune("minilm", ds, out=Path(tmp) / "m", config=cfg, progress=False)
        row = {"learning_rate": body, "head_learning_rate": head,
               "dev_accuracy": res.metrics["dev"]["accuracy"],
               "test_accuracy": res.metrics["test"]["accuracy"],
               "test_macro_f1": res.metrics["test"]["macro_f1"],
               "seconds": round(time.perf_counter() - t0, 1)}
        print(json.dumps(row), flush=True)
        rows.append(row)
    from edgebert.artifact import host_info, library_versions, write_json

    commands.append("python benchmarks/lr_sweep.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    rows.sort(key=lambda r: (r["learning_rate"], r["head_learning_rate"]))
    write_json(args.out, {
        "commands": commands,
        "model": "minilm (all-MiniLM-L6-v2)", "data": "BANKING77 stratified train subset",
        "train_rows": len(ds.split("train")), "dev_rows": len(ds.split("dev")),
        "test_rows": len(ds.split("test")), "epochs": args.epochs,
        "results": rows, "host": host_info(), "versions": library_versions(),
    })


if __name__ == "__main__":
    main()
