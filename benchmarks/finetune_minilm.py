"""Benchmark record: the embedded all-MiniLM-L6-v2 fine-tuned on full SST-2 and full BANKING77.

Uses edgebert's default fine-tuning settings (only --model and --data chosen), the real datasets in
../shared/data, and writes dev/test accuracy and macro-F1 with the command that produced them to
runs/benchmarks/finetune_minilm.json (--publish: benchmarks/results/; and a Markdown table beside it).

    python benchmarks/finetune_minilm.py                 # both datasets
    python benchmarks/finetune_minilm.py --only sst2     # one of them
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from pathlib import Path

from publish import add_publish_option, results_dir  # run as a script: benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
DATASETS = {"sst2": "SST-2 (sentence-level binary sentiment)", "banking77": "BANKING77 (77 intents)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=sorted(DATASETS), action="append")
    ap.add_argument("--keep", type=Path, default=None, help="Keep the fine-tuned models under this folder.")
    add_publish_option(ap)
    args = ap.parse_args()
    RESULTS = results_dir(args.publish)

    from edgebert.artifact import host_info, library_versions, now_iso, write_json
    from edgebert.train import FinetuneConfig, finetune

    out_json = RESULTS / "finetune_minilm.json"
    import json

    record = json.loads(out_json.read_text()) if out_json.is_file() else {"results": {}}
    for name in args.only or list(DATASETS):
        folder = DATA / name
        if not folder.is_dir():
            sys.exit(f"{folder} not found: this benchmark needs ../shared/data (see README)")
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            out = (args.keep / f"minilm-{name}") if args.keep else Path(tmp) / "m"
            res = finetune("minilm", str(folder), out=out, config=FinetuneConfig(), overwrite=True)
        m = res.metrics
        record["results"][name] = {
            "dataset": DATASETS[name],
            "train_rows": res.manifest["data"]["rows"]["train"],
            "dev_rows": m["dev"]["n"], "dev_from_train": res.manifest["data"]["dev_from_train"],
            "dev_accuracy": m["dev"]["accuracy"], "dev_macro_f1": m["dev"]["macro_f1"],
            "test_rows": m["test"]["n"], "test_accuracy": m["test"]["accuracy"],
            "test_macro_f1": m["test"]["macro_f1"],
            "best_epoch": m["best_epoch"], "epochs_run": len(m["history"]),
            "resolved": res.manifest["resolved"], "config": res.manifest["config"],
            "seconds": round(time.perf_counter() - t0, 1), "date": now_iso(),
            "command": "python benchmarks/finetune_minilm.py --only " + name,
        }
        print(record["results"][name], flush=True)
    record.update(host=host_info(), versions=library_versions(),
                  command="python benchmarks/finetune_minilm.py " + " ".join(map(shlex.quote, sys.argv[1:])))
    write_json(out_json, record)
    rows = ["| dataset | train rows | dev acc | dev macro-F1 | test acc | test macro-F1 | epochs (best) | minutes |",
            "|---|---|---|---|---|---|---|---|"]
    for r in record["results"].values():
        rows.append(f"| {r['dataset']} | {r['train_rows']} | {r['dev_accuracy']:.4f} | {r['dev_macro_f1']:.4f} "
                    f"| {r['test_accuracy']:.4f} | {r['test_macro_f1']:.4f} | {r['epochs_run']} ({r['best_epoch']}) "
                    f"| {r['seconds'] / 60:.1f} |")
    (RESULTS / "finetune_minilm.md").write_text(
        "# MiniLM fine-tuned with edgebert's defaults\n\nProduced by `python benchmarks/finetune_minilm.py` "
        f"on {record['host']['processor']} ({record['host']['cpu_count']} cores).\n\n" + "\n".join(rows) + "\n",
        encoding="utf-8")


if __name__ == "__main__":
    main()
