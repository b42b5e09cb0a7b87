"""Training-step time of MiniLM on this CPU with torch's default AdamW and with the fused AdamW that
`finetune` and `distill` use (edgebert.train.finetune._adamw).

    python benchmarks/train_step.py            # writes runs/benchmarks/train_step.{json,md} (--publish: benchmarks/results/)

Each optimizer trains its own copy of the embedded MiniLM (all 6 layers, a 2-label head) on the same
batches of real SST-2 training sentences (batch 32, their own lengths); blocks of steps alternate
between the two so that load changes hit both. Reported: median seconds per whole step (forward,
backward, clipping, optimizer) and per optimizer step alone, and the ratio default / fused. The two
copies must also end with the same weights (same algorithm; only the kernel differs).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

from publish import add_publish_option, results_dir  # run as a script: benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "sst2"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--blocks", type=int, default=6, help="Alternating blocks per optimizer")
    ap.add_argument("--steps", type=int, default=5, help="Steps per block")
    ap.add_argument("--threads", type=int, default=2)
    add_publish_option(ap)
    args = ap.parse_args()
    RESULTS = results_dir(args.publish)

    import torch

    from edgebert import models
    from edgebert.artifact import host_info, now_iso, write_json
    from edgebert.data import collate_batches, load_dataset
    from edgebert.train.finetune import _adamw, _param_groups

    torch.set_num_threads(args.threads)
    loadavg_start = os.getloadavg()[0]
    if not DATA.is_dir():
        raise SystemExit(f"missing {DATA}: this benchmark reads real SST-2 sentences")
    ds = load_dataset(str(DATA))
    loaded = models.load("minilm", label_names=ds.label_names)
    tok = loaded.tokenizer
    batches = list(collate_batches(ds.split("train"), tok, batch_size=32, max_length=128, shuffle=True, seed=0))
    n_steps = args.blocks * args.steps
    batches = batches[:n_steps]

    def optimizer(model, name):
        groups = _param_groups(model, loaded.spec, 5e-5, 5e-4, 0.01)
        return torch.optim.AdamW(groups, foreach=False) if name == "default" else _adamw(groups)

    runs = {}
    for name in ("default", "fused"):
        model = copy.deepcopy(loaded.model)
        model.train()
        opt = optimizer(model, name)
        runs[name] = {"model": model, "opt": opt, "step": [], "optimizer": [], "i": 0,
                      "fused": bool(opt.defaults.get("fused"))}
    torch.manual_seed(0)

    def one_step(run):
        inputs, labels, _ = batches[run["i"]]
        run["i"] += 1
        t0 = time.perf_counter()
        loss = run["model"](**inputs, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run["model"].parameters(), 1.0)
        t1 = time.perf_counter()
        run["opt"].step()
        run["opt"].zero_grad()
        t2 = time.perf_counter()
        run["step"].append(t2 - t0)
        run["optimizer"].append(t2 - t1)

    for block in range(args.blocks):
        order = ("default", "fused") if block % 2 == 0 else ("fused", "default")
        for name in order:
            for _ in range(args.steps):
                one_step(runs[name])

    # dropout differs between the copies (one RNG stream), so compare with dropout off: same weights
    # after one more identical step from identical states
    a, b = (copy.deepcopy(runs[n]["model"]).eval() for n in ("default", "fused"))
    b.load_state_dict(a.state_dict())
    for model, opt_name in ((a, "default"), (b, "fused")):
        opt = optimizer(model, opt_name)
        inputs, labels, _ = batches[0]
        model(**inputs, labels=labels).loss.backward()
        opt.step()
    max_diff = max(float((pa - pb).abs().max()) for pa, pb in zip(a.parameters(), b.parameters()))

    def med(xs):
        return statistics.median(xs[1:])  # the first step allocates the optimizer state

    rows = {n: {"fused_kernel": r["fused"], "step_s": med(r["step"]), "optimizer_s": med(r["optimizer"]),
                "optimizer_share": med(r["optimizer"]) / med(r["step"]), "steps": len(r["step"])}
            for n, r in runs.items()}
    record = {
        "command": "python benchmarks/train_step.py" + (f" --blocks {args.blocks}" if args.blocks != 6 else "")
        + (f" --steps {args.steps}" if args.steps != 5 else ""),
        "date": now_iso(), "host": host_info()["processor"], "threads": args.threads,
        "loadavg_start": loadavg_start, "torch": torch.__version__,
        "model": "minilm (6 layers, 22.7M parameters), SST-2 train batches of 32",
        "results": rows,
        "step_speedup": rows["default"]["step_s"] / rows["fused"]["step_s"],
        "optimizer_speedup": rows["default"]["optimizer_s"] / rows["fused"]["optimizer_s"],
        "max_weight_diff_after_identical_step": max_diff,
    }
    write_json(RESULTS / "train_step.json", record)
    md = ["# Training step: default vs fused AdamW (MiniLM, this CPU)", "",
          f"Command: `{record['command']}`  ", f"Date: {record['date']}; host: {record['host']}; "
          f"threads {args.threads}; torch {record['torch']}", "",
          "| optimizer | fused kernel | median step s | median optimizer s | optimizer share |",
          "|---|---|---|---|---|"]
    for n, r in rows.items():
        md.append(f"| {n} | {r['fused_kernel']} | {r['step_s']:.3f} | {r['optimizer_s']:.3f} | "
                  f"{100 * r['optimizer_share']:.0f}% |")
    md += ["", f"Whole step {record['step_speedup']:.2f}x faster, optimizer step {record['optimizer_speedup']:.2f}x "
               f"faster; weights after one identical step differ by at most {max_diff:.2e}.", ""]
    (RESULTS / "train_step.md").write_text("\n".join(md), encoding="utf-8")
    print("\n".join(md))


if __name__ == "__main__":
    main()
