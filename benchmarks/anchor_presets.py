"""Which Optimum anchor? The int8 anchor built with the AVX2 preset (the one the goal names) and with
the preset `edgebert bench --baselines` picks from the CPU's flags (AVX-512 VNNI here), timed in one
`edgebert bench` run next to the fine-tuned model and the `cpu` goals artifact.

    python benchmarks/anchor_presets.py [--dataset sst2] [--presets avx2 avx512_vnni]

Needs runs/models/minilm-<ds> (benchmarks/finetune_minilm.py --keep runs/models) and the goals
artifact (benchmarks/cpu_goals.py). Each anchor is built by edgebert.bench.baselines.build_optimum_int8
(Optimum ONNX export + ORTQuantizer dynamic int8, per_channel=False) into runs/anchors/<ds>-<preset>/,
with the model's tokenizer and config beside it. Writes runs/benchmarks/anchor-presets-<ds>.{json,md} (--publish: benchmarks/results/):
per anchor its test accuracy, p50 latency and the artifact's speed-up against it.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
from pathlib import Path

from cpu_goals import ARTIFACTS, DATA, ROOT, sh  # run as a script: benchmarks/ is on sys.path
from publish import add_publish_option, results_dir


def build_anchor(model: Path, out: Path, preset: str) -> Path:
    from edgebert.bench.baselines import build_optimum_int8
    from edgebert.bench.variants import discover

    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    spec = build_optimum_int8(discover(str(model))[0], out, preset=preset)
    if spec.error or spec.skip_reason:
        sys.exit(f"anchor {preset}: {spec.error or spec.skip_reason}")
    quantized = Path(spec.path)
    for f in model.iterdir():  # tokenizer files and config.json (labels) beside the ONNX file
        if f.is_file() and not f.name.endswith((".safetensors", ".bin")):
            shutil.copy2(f, quantized.parent / f.name)
    return quantized


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=("sst2", "banking77"), default="sst2")
    ap.add_argument("--presets", nargs="+", default=["avx2", "avx512_vnni"],
                    choices=["arm64", "avx2", "avx512", "avx512_vnni"])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--latency-samples", type=int, default=200)
    add_publish_option(ap)
    args = ap.parse_args()
    RESULTS = results_dir(args.publish)
    from edgebert.artifact import host_info, now_iso
    from edgebert.bench.protocol import cpu_flags

    ds = args.dataset
    model, art = ROOT / f"runs/models/minilm-{ds}", ROOT / ARTIFACTS[ds]
    for need in (model, art / "manifest.json"):
        if not need.exists():
            sys.exit(f"missing {need}: run benchmarks/finetune_minilm.py --keep runs/models and benchmarks/cpu_goals.py")
    anchors = {p: build_anchor(model, ROOT / f"runs/anchors/{ds}-{p}", p) for p in args.presets}
    bench_out = ROOT / f"runs/anchors/{ds}-bench"
    sh([sys.executable, "-m", "edgebert", "bench", str(model), str(art), *(str(a) for a in anchors.values()),
        "--data", str(DATA / ds), "--split", "test", "--rounds", str(args.rounds),
        "--latency-samples", str(args.latency_samples), "--no-memory", "--out", str(bench_out), "--overwrite", "--quiet"])
    bench = json.loads((bench_out / "bench.json").read_text())
    by_source = {v["source"]: v for v in bench["variants"]}
    eager = by_source[str(model)]
    artifact = next(v for v in bench["variants"] if v["name"].startswith(f"{art.name}/"))
    rows = {p: by_source[str(path)] for p, path in anchors.items()}
    record = {
        "dataset": ds, "date": now_iso(), "host": host_info()["processor"], "cpu_flags": sorted(cpu_flags()),
        "command": shlex.join(["python", "benchmarks/anchor_presets.py", "--dataset", ds, "--presets", *args.presets]),
        "n": eager["accuracy"]["n"],
        "eager": {"accuracy": eager["accuracy"]["accuracy"], "p50_ms": eager["latency"]["p50"]},
        "artifact": {"path": str(art.relative_to(ROOT)), "accuracy": artifact["accuracy"]["accuracy"],
                     "p50_ms": artifact["latency"]["p50"]},
        "anchors": {p: {"accuracy": v["accuracy"]["accuracy"], "p50_ms": v["latency"]["p50"],
                        "p25_ms": v["latency"]["p25"], "p75_ms": v["latency"]["p75"], "size_mb": v["size_mb"],
                        "artifact_speedup": v["latency"]["p50"] / artifact["latency"]["p50"]}
                    for p, v in rows.items()},
    }
    (RESULTS / f"anchor-presets-{ds}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    lines = [f"# Optimum int8 anchor presets on {ds} (test split, n={record['n']}, batch 1)", "",
             f"Command: `{record['command']}`  ", f"Date: {record['date']}; host: {record['host']}", "",
             "| variant | accuracy | p50 ms (p25-p75) | size MB | `cpu` artifact's p50 speed-up against it |",
             "|---|---|---|---|---|",
             f"| PyTorch eager fp32 | {eager['accuracy']['accuracy']:.4f} | {eager['latency']['p50']:.2f} | - | "
             f"{eager['latency']['p50'] / artifact['latency']['p50']:.2f}x |"]
    for p, a in record["anchors"].items():
        lines.append(f"| Optimum int8, `AutoQuantizationConfig.{p}` | {a['accuracy']:.4f} | {a['p50_ms']:.2f} "
                     f"({a['p25_ms']:.2f}-{a['p75_ms']:.2f}) | {a['size_mb']:.1f} | {a['artifact_speedup']:.2f}x |")
    lines += [f"| `cpu` artifact ({record['artifact']['path']}) | {record['artifact']['accuracy']:.4f} | "
              f"{record['artifact']['p50_ms']:.2f} | - | - |", "",
              "One `edgebert bench` run, variants interleaved, real test sentences at their own lengths; "
              "memory not measured (--no-memory). Full report: runs/anchors/" + f"{ds}-bench/bench.md (not committed).", ""]
    (RESULTS / f"anchor-presets-{ds}.md").write_text("\n".join(lines), encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
