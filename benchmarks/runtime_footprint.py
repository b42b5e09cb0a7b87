"""Footprint of the torch-free runtime next to the full PyTorch stack: installed size, RSS, cold start.

    python benchmarks/runtime_footprint.py --artifact runs/artifacts/minilm-banking77-int8 \\
        --artifact runs/artifacts/minilm-banking77-fp32 --hf-model runs/models/minilm-banking77

(artifacts from ``benchmarks/build_runtime_artifact.py``; the HF folder from
``benchmarks/finetune_minilm.py --keep runs/models``). Writes ``runs/benchmarks/runtime_footprint.json`` (``--publish``: ``benchmarks/results/``)
and ``.md`` with the command.

Installed size
    Sum of the files each installed distribution lists (``importlib.metadata``: its RECORD), over
    the requirement closure (requirements followed recursively, markers evaluated for this Python,
    extras not followed) of: edgebert's base dependencies in pyproject.toml (the runtime, what
    ``pip install edgebert`` installs); ``torch`` + ``transformers`` (what running the Hugging Face
    model needs); the base dependencies and the ``train`` extra (the full install).
    edgebert's own package files are counted in each. ``--venv DIR`` also measures a virtual
    environment where the runtime was really installed (``pip install -e .``, no extras): every
    distribution in it.
Memory and cold start
    Each stack runs in a fresh Python process (``-c``), ``--runs`` times: it imports the protocol's
    RSS helpers (:mod:`edgebert.bench.protocol`, numpy) first, then is timed through: import of the
    stack, load of the model, first prediction of one sentence. Cold start = wall time from spawning
    the process to that first prediction, measured by the parent (interpreter start-up included).
    RSS after load = ``VmRSS`` after the first prediction; peak = ``VmHWM``. Medians over the runs
    (min and max recorded). The model files are in the page cache after the first run (a warm-disk
    cold start: the process is new, the disk reads are not).
    Threads: ``--threads`` for both (onnxruntime intra-op threads; ``torch.set_num_threads``).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

from publish import add_publish_option, results_dir  # run as a script: benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
SENTENCE = "I still have not received my new card, I ordered over a week ago."

_CHILD_RUNTIME = """
import json, sys, time
from edgebert.bench.protocol import peak_rss_mb, rss_mb
base = rss_mb()
t0 = time.perf_counter()
import onnxruntime, tokenizers  # Classifier.load would import them: timed as the import, as torch is
from edgebert.runtime import Classifier
t1 = time.perf_counter()
clf = Classifier.load(sys.argv[2], threads=int(sys.argv[3]))
t2 = time.perf_counter()
label = clf.predict(sys.argv[4]).label
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_predict_s": t3 - t2, "label": label,
                  "rss_base_mb": base, "rss_after_load_mb": rss_mb(), "peak_rss_mb": peak_rss_mb()[0],
                  "torch_imported": "torch" in sys.modules, "transformers_imported": "transformers" in sys.modules,
                  "t_done": time.time()}))
"""

_CHILD_PYTORCH = """
import json, sys, time
from edgebert.bench.protocol import peak_rss_mb, rss_mb
base = rss_mb()
t0 = time.perf_counter()
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
t1 = time.perf_counter()
torch.set_num_threads(int(sys.argv[3]))
tok = AutoTokenizer.from_pretrained(sys.argv[2])
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[2]).eval()
t2 = time.perf_counter()
with torch.inference_mode():
    logits = model(**tok([sys.argv[4]], truncation=True, max_length=128, return_tensors="pt")).logits
label = model.config.id2label[int(logits.argmax(-1))]
t3 = time.perf_counter()
print(json.dumps({"import_s": t1 - t0, "load_s": t2 - t1, "first_predict_s": t3 - t2, "label": label,
                  "rss_base_mb": base, "rss_after_load_mb": rss_mb(), "peak_rss_mb": peak_rss_mb()[0],
                  "torch_imported": True, "transformers_imported": True, "t_done": time.time()}))
"""


# -- installed size ---------------------------------------------------------------------------------

def _runtime_dependencies() -> list[str]:
    """The base install: the runtime alone."""
    import tomllib

    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]


def _full_dependencies() -> list[str]:
    """The base install and the training side (edgebert[train])."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return project["dependencies"] + project["optional-dependencies"]["train"]


def closure(requirements: list[str], path: list[str] | None = None) -> dict[str, object]:
    """Installed distributions reached from ``requirements`` (name -> Distribution); missing ones listed."""
    from importlib import metadata

    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    found = metadata.distributions(path=path) if path is not None else metadata.distributions()
    dists = {canonicalize_name(d.metadata["Name"]): d for d in found}
    seen: dict[str, object] = {}
    missing: list[str] = []
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        name = canonicalize_name(req.name)
        if name in seen:
            continue
        dist = dists.get(name)
        if dist is None:
            missing.append(name)
            continue
        seen[name] = dist
        todo.extend(Requirement(r) for r in (dist.requires or []))
    return {"dists": seen, "missing": sorted(set(missing))}


def dist_bytes(dist) -> int:
    total = 0
    for f in dist.files or []:
        try:
            total += dist.locate_file(f).stat().st_size
        except OSError:
            pass
    return total


def edgebert_package_bytes() -> int:
    pkg = ROOT / "edgebert"
    return sum(p.stat().st_size for p in pkg.rglob("*") if p.is_file() and "__pycache__" not in p.parts)


def size_row(name: str, requirements: list[str]) -> dict:
    c = closure(requirements)
    per = sorted(((n, dist_bytes(d)) for n, d in c["dists"].items()), key=lambda x: -x[1])
    own = edgebert_package_bytes()
    total = sum(b for _, b in per) + own
    return {"set": name, "requirements": requirements, "distributions": len(per), "mb": round(total / 2**20, 1),
            "edgebert_package_mb": round(own / 2**20, 2),
            "largest": [{"name": n, "mb": round(b / 2**20, 1)} for n, b in per[:8]], "missing": c["missing"]}


def venv_row(venv: Path) -> dict:
    from importlib import metadata

    site = sorted(venv.glob("lib/python*/site-packages"))
    if not site:
        raise SystemExit(f"{venv}: no lib/python*/site-packages")
    skip = {"pip", "setuptools", "wheel", "edgebert"}  # installer tools; edgebert counted as package files
    per = sorted(((d.metadata["Name"], dist_bytes(d)) for d in metadata.distributions(path=[str(site[0])])
                  if d.metadata["Name"].lower() not in skip), key=lambda x: -x[1])
    own = edgebert_package_bytes()
    return {"set": f"measured venv {venv} (runtime-only install)", "distributions": len(per),
            "mb": round((sum(b for _, b in per) + own) / 2**20, 1),
            "versions": {d.metadata["Name"]: d.version for d in metadata.distributions(path=[str(site[0])])},
            "largest": [{"name": n, "mb": round(b / 2**20, 1)} for n, b in per[:8]]}


# -- memory and cold start --------------------------------------------------------------------------

def run_child(code: str, model: str, threads: int) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads),
               TOKENIZERS_PARALLELISM="false")
    t_spawn = time.time()
    proc = subprocess.run([sys.executable, "-c", code, str(t_spawn), model, str(threads), SENTENCE],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=600)
    if proc.returncode != 0:
        raise SystemExit(f"child failed for {model}: {proc.stderr.strip().splitlines()[-1:]}")
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    out["cold_start_s"] = out.pop("t_done") - t_spawn  # spawn -> first prediction done
    return out


def summarize_runs(runs: list[dict]) -> dict:
    keys = ("cold_start_s", "import_s", "load_s", "first_predict_s", "rss_after_load_mb", "peak_rss_mb",
            "rss_base_mb")
    out = {k: round(statistics.median(r[k] for r in runs), 3) for k in keys}
    out["cold_start_range_s"] = [round(min(r["cold_start_s"] for r in runs), 3),
                                 round(max(r["cold_start_s"] for r in runs), 3)]
    out["label"] = runs[0]["label"]
    out["torch_imported"] = any(r["torch_imported"] for r in runs)
    out["transformers_imported"] = any(r["transformers_imported"] for r in runs)
    return out


def _model_mb(path: Path) -> float:
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    return round(sum(p.stat().st_size for p in files) / 2**20, 1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--artifact", action="append", required=True, help="runtime artifact folder (repeatable)")
    ap.add_argument("--hf-model", required=True, help="the Hugging Face model folder the artifacts came from")
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per stack")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--venv", type=Path, default=None, help="a venv holding the runtime-only install")
    ap.add_argument("--out", type=Path, default=None,
                    help="result file [default: runtime_footprint.json in runs/benchmarks/, or with --publish "
                         "benchmarks/results/]")
    add_publish_option(ap)
    args = ap.parse_args(argv)
    args.out = args.out or results_dir(args.publish) / "runtime_footprint.json"

    from edgebert.artifact import now_iso, write_json
    from edgebert.bench.protocol import environment

    load_at_start = os.getloadavg()
    sizes = [size_row("runtime (pip install edgebert)", _runtime_dependencies()),
             size_row("torch + transformers", ["torch", "transformers"]),
             size_row("full install (edgebert[train])", _full_dependencies())]
    if args.venv:
        sizes.append(venv_row(args.venv))
    stacks = []
    for art in args.artifact:
        runs = [run_child(_CHILD_RUNTIME, art, args.threads) for _ in range(args.runs)]
        manifest = json.loads((Path(art) / "manifest.json").read_text())
        model_file = Path(art) / manifest.get("deploy", {}).get("model", "model/model.onnx")
        stacks.append({"stack": "edgebert.runtime (onnxruntime + tokenizers)", "model": art,
                       "model_mb": _model_mb(model_file), **summarize_runs(runs), "runs": runs})
    runs = [run_child(_CHILD_PYTORCH, args.hf_model, args.threads) for _ in range(args.runs)]
    weights = Path(args.hf_model) / "model.safetensors"
    stacks.append({"stack": "PyTorch + transformers (AutoModelForSequenceClassification)", "model": args.hf_model,
                   "model_mb": _model_mb(weights if weights.is_file() else Path(args.hf_model)),
                   **summarize_runs(runs), "runs": runs})
    labels = {s["label"] for s in stacks}
    command = "python benchmarks/runtime_footprint.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    record = {"command": command, "date": now_iso(), "loadavg_at_start": load_at_start,
              "loadavg_at_end": os.getloadavg(), "sentence": SENTENCE, "threads": args.threads, "runs": args.runs,
              "same_label_everywhere": len(labels) == 1, "installed_size": sizes, "stacks": stacks,
              "environment": environment(args.threads)}
    write_json(args.out, record)
    args.out.with_suffix(".md").write_text(markdown(record), encoding="utf-8")
    print(markdown(record))
    return 0


def markdown(r: dict) -> str:
    lines = ["# Runtime footprint: edgebert.runtime vs the PyTorch stack", "",
             f"Command: `{r['command']}`  ", f"Date: {r['date']}; machine: {r['environment']['device_label']}; "
             f"threads {r['threads']}; load average at start {r['loadavg_at_start'][0]:.2f} "
             "(timings on a busy machine are inflated: re-run on a quiet one).", "",
             "## Installed size (requirement closure, files of each installed distribution)", "",
             "| package set | distributions | MB | largest |", "|---|---|---|---|"]
    for s in r["installed_size"]:
        largest = ", ".join(f"{x['name']} {x['mb']}" for x in s["largest"][:4])
        lines.append(f"| {s['set']} | {s['distributions']} | {s['mb']} | {largest} |")
    lines += ["", f"## Memory and cold start (fresh process, median of {r['runs']} runs; one sentence)", "",
              "| stack | model | model MB | cold start s [min–max] | import s | load s | first prediction s | "
              "RSS after load MB | peak RSS MB | torch imported |", "|---|---|---|---|---|---|---|---|---|---|"]
    for s in r["stacks"]:
        lo, hi = s["cold_start_range_s"]
        lines.append(f"| {s['stack']} | `{s['model']}` | {s['model_mb']} | "
                     f"{s['cold_start_s']:.2f} [{lo:.2f}–{hi:.2f}] "
                     f"| {s['import_s']:.2f} | {s['load_s']:.2f} | {s['first_predict_s']:.3f} | "
                     f"{s['rss_after_load_mb']:.0f} | {s['peak_rss_mb']:.0f} | {s['torch_imported']} |")
    lines += ["", "Cold start = spawning `python -c` until the first prediction is done (interpreter start-up "
              "included; model files in the page cache). RSS = VmRSS after that prediction; peak = VmHWM.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
