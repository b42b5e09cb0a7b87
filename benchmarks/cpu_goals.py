"""Goals of the `cpu` target, measured: MiniLM fine-tuned on SST-2 and on BANKING77, compressed with
`edgebert compress --target cpu`, benchmarked in one `edgebert bench` run next to the baselines.

    python benchmarks/finetune_minilm.py --keep runs/models   # once: the two fine-tuned models
    python benchmarks/cpu_goals.py                             # compress (resumes) + bench + goals table

For each dataset: `edgebert compress` writes ARTIFACTS[ds] (re-runs skip unchanged stages), then
`edgebert bench` times, in one process with variants interleaved, batch 1, real test sentences at
their own lengths (no padding; every variant gets the same inputs): PyTorch eager fp32 (the
fine-tuned model), onnxruntime fp32 of the same model (deployed-fp32 reference), the Optimum anchor
(Optimum ONNX export + ORTQuantizer dynamic int8, preset chosen by CPU flags) and the artifact.
Accuracy is on the test split (the dev split chose the distilled checkpoint and the quantization).

Goals (from the issue): accuracy at most 1.0 point below the fine-tuned fp32 model; median latency
at least 3x lower than eager and 2x lower than the Optimum anchor; model file at most 1/4 of fp32;
peak process memory at most half of eager's. Results go to runs/benchmarks/cpu-goals.{json,md} (with
--publish: benchmarks/results/, the committed record) with the command; goals not met are reported as
not met. --artifact measures an artifact built elsewhere (e.g. by the customer-service walk-through)
instead of compressing ARTIFACTS[ds].
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from publish import LOCAL, add_publish_option, results_dir  # run as a script: benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESULTS = LOCAL  # main() sets it from --publish
DATASETS = ("sst2", "banking77")
# Each dataset's goals artifact (also seed 0 of benchmarks/cpu_seeds.py). BANKING77's is banking77-5ep:
# runs/goals/banking77 holds the 3-epoch artifact that the README's runtime figures were measured on.
ARTIFACTS = {"sst2": "runs/goals/sst2", "banking77": "runs/goals/banking77-5ep"}
GOALS = {  # name: (description, threshold, direction)
    "accuracy_drop_points": ("accuracy drop vs fine-tuned fp32 (points)", 1.0, "max"),
    "speedup_vs_eager": ("p50 speed-up vs PyTorch eager fp32", 3.0, "min"),
    "speedup_vs_anchor": ("p50 speed-up vs Optimum int8 anchor", 2.0, "min"),
    "size_ratio": ("model file / fp32 model file", 0.25, "max"),
    "memory_ratio": ("peak RSS / eager peak RSS", 0.5, "max"),
}


def sh(cmd: list[str]) -> None:
    print("+", shlex.join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def evaluate(bench: dict, artifact_prefix: str) -> dict:
    by_role = {v["name"]: v for v in bench["variants"]}
    eager = next(v for v in bench["variants"] if v.get("baseline") == "pytorch-fp32")
    ort32 = next(v for v in bench["variants"] if v.get("baseline") == "onnx-fp32")
    anchor = next(v for v in bench["variants"] if v.get("baseline") == "optimum-int8")
    art = next(v for n, v in by_role.items() if n.startswith(artifact_prefix))

    def p50(v):
        return v["latency"]["p50"]

    row = {
        "variants": {name: {"accuracy": v["accuracy"]["accuracy"], "p50_ms": p50(v),
                            "p25_ms": v["latency"]["p25"], "p75_ms": v["latency"]["p75"],
                            "p99_ms": v["latency"]["p99"], "size_mb": v["size_mb"],
                            "peak_rss_mb": v["memory"]["peak_rss_mb"]}
                     for name, v in (("pytorch-eager-fp32", eager), ("onnxruntime-fp32", ort32),
                                     ("optimum-int8-anchor", anchor), ("edgebert-cpu", art))},
        "anchor_preset": (anchor.get("validation") or {}).get("optimum_preset"),
        "accuracy_drop_points": 100.0 * (eager["accuracy"]["accuracy"] - art["accuracy"]["accuracy"]),
        "speedup_vs_eager": p50(eager) / p50(art),
        "speedup_vs_ort_fp32": p50(ort32) / p50(art),
        "speedup_vs_anchor": p50(anchor) / p50(art),
        "size_ratio": art["size_mb"] / eager["size_mb"],
        "memory_ratio": art["memory"]["peak_rss_mb"] / eager["memory"]["peak_rss_mb"],
    }
    row["goals"] = {k: {"description": d, "threshold": t, "value": row[k],
                        "met": row[k] <= t if direction == "max" else row[k] >= t}
                    for k, (d, t, direction) in GOALS.items()}
    return row


def recipe_line(manifest: dict) -> str:
    """The settings that shape the artifact (what was removed, how it was distilled), from its manifest."""
    keys = {"prune": ("layers", "heads", "ffn"), "distill": ("epochs", "select", "alpha", "temperature", "augment"),
            "quantize": ("mode",)}
    parts = []
    for stage in manifest["stages"]:
        cfg = stage.get("config") or {}
        if stage["kind"] in keys:
            shown = [k for k in keys[stage["kind"]] if k in cfg]
            if stage["kind"] == "distill":  # settings shown where they differ from distill's defaults
                from edgebert.stages.distill import DistillConfig

                shown += [k for k in ("hidden_weight", "attention_weight", "learning_rate", "head_learning_rate",
                                      "patience") if k in cfg and cfg[k] != DistillConfig.model_fields[k].default]
            parts.append(stage["kind"] + " " + ", ".join(f"{k}={cfg[k]}" for k in shown))
    return "; ".join(parts)


def markdown(record: dict) -> str:
    lines = ["# cpu target goals (MiniLM, this machine's CPU)", "",
             f"Latest command: `{record['command']}`  ", f"Date: {record['date']}; host: {record['host']}; "
             f"load average at bench start: {record['loadavg']}", ""]
    for ds, row in record["results"].items():
        lines += [f"## {ds} (test split, n={row['n']})", "",
                  f"Command: `{row.get('command', record['command'])}`; measured {row.get('date', record['date'])}.", "",
                  "| variant | accuracy | p50 ms | p25-p75 ms | p99 ms | size MB | peak RSS MB |",
                  "|---|---|---|---|---|---|---|"]
        for name, v in row["variants"].items():
            lines.append(f"| {name} | {v['accuracy']:.4f} | {v['p50_ms']:.2f} | {v['p25_ms']:.2f}-{v['p75_ms']:.2f} | "
                         f"{v['p99_ms']:.2f} | {v['size_mb']:.1f} | {v['peak_rss_mb']:.0f} |")
        lines += ["", "| goal | target | measured | met |", "|---|---|---|---|"]
        for g in row["goals"].values():
            op = "<=" if g["description"].startswith(("accuracy", "model", "peak")) else ">="
            lines.append(f"| {g['description']} | {op} {g['threshold']} | {g['value']:.3f} | "
                         f"{'yes' if g['met'] else '**no**'} |")
        lines += ["", f"Also: {row['speedup_vs_ort_fp32']:.2f}x faster than onnxruntime fp32 of the unpruned model. "
                      f"Anchor preset: {row['anchor_preset']}. Artifact: {row['artifact']}; stages: "
                      f"{row['stages']}. Recipe settings: {row.get('recipe', 'not recorded')}.", ""]
        seeds = RESULTS / f"cpu-seeds-{ds}.json"
        if seeds.is_file():  # the same recipe repeated with other seeds (benchmarks/cpu_seeds.py)
            sm = json.loads(seeds.read_text())["summary"]
            drops = ", ".join(f"{r['drop_points']:+.2f}" for r in json.loads(seeds.read_text())["rows"])
            lines += [f"Over seeds {sm['seeds']} ([cpu-seeds-{ds}.md](cpu-seeds-{ds}.md)): accuracy drops {drops} "
                      f"points, mean {sm['drop_points']['mean']:+.2f}; the accuracy goal is met by {sm['goal_met']} "
                      f"of {len(sm['seeds'])} seeds.", ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=DATASETS, action="append")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-samples", type=int, default=200)
    ap.add_argument("--skip-compress", action="store_true", help="Use the existing artifacts (ARTIFACTS).")
    ap.add_argument("--render", action="store_true", help="Only rewrite cpu-goals.md from cpu-goals.json.")
    ap.add_argument("--artifact", type=Path, default=None,
                    help="Measure this existing artifact (compressed from runs/models/minilm-<ds>) instead of "
                         "compressing ARTIFACTS[ds]; needs exactly one --only.")
    add_publish_option(ap)
    args = ap.parse_args()
    if args.artifact is not None and len(args.only or []) != 1:
        ap.error("--artifact needs exactly one --only DATASET (the data the artifact was compressed on)")
    global RESULTS
    RESULTS = results_dir(args.publish)
    from edgebert.artifact import host_info, now_iso, write_json

    out_json = RESULTS / "cpu-goals.json"
    record = json.loads(out_json.read_text()) if out_json.is_file() else {"results": {}}
    if args.render:
        (RESULTS / "cpu-goals.md").write_text(markdown(record), encoding="utf-8")
        return
    record.update(command=shlex.join(["python", "benchmarks/cpu_goals.py", *sys.argv[1:]]),
                  date=now_iso(), host=host_info()["processor"], loadavg=os.getloadavg()[0])
    edgebert = [sys.executable, "-m", "edgebert"]
    for ds in args.only or DATASETS:
        model, art = ROOT / f"runs/models/minilm-{ds}", (args.artifact or ROOT / ARTIFACTS[ds]).resolve()
        bench_out = art.with_name(art.name + "-bench")
        if not model.is_dir():
            sys.exit(f"missing {model}: run python benchmarks/finetune_minilm.py --keep runs/models first")
        if args.artifact is not None and not (art / "manifest.json").is_file():
            sys.exit(f"{args.artifact} is not an artifact folder (no manifest.json): pass what edgebert compress --out wrote")
        if not args.skip_compress and args.artifact is None:
            sh([*edgebert, "compress", "--model", str(model), "--target", "cpu", "--data", str(DATA / ds),
                "--out", str(art), "--quiet"])
        print(f"load average before bench: {os.getloadavg()}", flush=True)
        sh([*edgebert, "bench", str(model), str(art), "--data", str(DATA / ds), "--split", "test", "--baselines",
            "--rounds", str(args.rounds), "--latency-samples", str(args.latency_samples),
            "--out", str(bench_out), "--overwrite", "--quiet"])
        bench = json.loads((bench_out / "bench.json").read_text())
        row = evaluate(bench, f"{art.name}/")
        manifest = json.loads((art / "manifest.json").read_text())
        row.update(n=bench["variants"][0]["accuracy"]["n"],
                   artifact=str(art.relative_to(ROOT)) if art.is_relative_to(ROOT) else str(art),
                   recipe=recipe_line(manifest),
                   stages=" -> ".join(s["kind"] + (" (skipped)" if s.get("skipped") else "") for s in manifest["stages"]),
                   compress_summary=manifest["summary"])
        row["date"] = record["date"]
        row["command"] = record["command"]
        record["results"][ds] = row
        dest = RESULTS / f"cpu-goals-{ds}"
        dest.mkdir(parents=True, exist_ok=True)
        for name in ("bench.json", "bench.md", "bench.csv", "pareto.png"):
            if (bench_out / name).is_file():
                shutil.copy(bench_out / name, dest / name)
        shutil.copy(art / "report.md", dest / "compress-report.md")
        shutil.copy(art / "manifest.json", dest / "manifest.json")  # every stage's config, metrics, history
        write_json(out_json, record)
        (RESULTS / "cpu-goals.md").write_text(markdown(record), encoding="utf-8")
    print((RESULTS / "cpu-goals.md").read_text())


if __name__ == "__main__":
    main()
