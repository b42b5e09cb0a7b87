"""Text-in models on real data: token ids, labels, sizes, .ort conversion, cold start and peak memory.

    python benchmarks/textin_check.py                          # MiniLM (embedded), a 2-label head
    python benchmarks/textin_check.py --model runs/models/minilm-banking77 --publish

Steps (the library's functions, as an export runs them):

1. the classifier (``--model``: a fine-tuned folder; default the embedded all-MiniLM-L6-v2 with a
   randomly initialised 2-label head, seed 0) exported to ONNX (``export_onnx``) and quantized
   int8 dynamic (``quantize_onnx``): the token-in model;
2. ``make_text_in``: the tokenizer merged in front of it (``--max-length`` tokens);
3. ``validate_text_in`` on EVERY SST-2 dev text and EVERY BANKING77 test text (``../shared/data``):
   texts whose token ids differ from the Hugging Face tokenizer's, texts whose label differs from
   the token-in model's, the largest logit difference;
4. ``export_mobile`` of both to ``.ort`` (the text-in one with the onnxruntime-extensions library);
5. file sizes; cold start and peak memory of each of the four files in fresh processes (``--runs``
   each): ``python -c`` that imports onnxruntime (+ ``tokenizers`` and reads tokenizer.json for the
   token-in files; + registers the extensions library for the text-in ones, found as the runtime
   finds it: ``edgebert.runtime.textin.extensions_library``), loads the model and
   classifies one sentence. Cold start = wall time of that process measured by the parent
   (interpreter start-up included); peak = the child's ``VmHWM`` (``ru_maxrss`` where absent).
   Medians over the runs.

Writes ``runs/benchmarks/textin_check.json`` and ``.md`` (``--publish``: ``benchmarks/results/``).
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from publish import add_publish_option, results_dir  # run as a script: benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
SENTENCE = "I still have not received my new card, I ordered over a week ago."

_CHILD = """
import json, resource, sys, time
kind, model, tokenizer = sys.argv[1], sys.argv[2], sys.argv[3]
import numpy as np
import onnxruntime as ort
options = ort.SessionOptions()
options.intra_op_num_threads = int(sys.argv[4])
if kind == "text":
    from edgebert.runtime.textin import extensions_library  # as the runtime finds it
    options.register_custom_ops_library(extensions_library())
session = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
sentence = sys.argv[5]
if kind == "text":
    feeds = {"text": np.array([sentence], dtype=object)}
else:
    from tokenizers import Tokenizer
    tk = Tokenizer.from_file(tokenizer)
    tk.no_padding()
    e = tk.encode(sentence)
    rows = {"input_ids": e.ids, "attention_mask": e.attention_mask, "token_type_ids": e.type_ids}
    feeds = {i.name: np.array([rows[i.name]], dtype=np.int64) for i in session.get_inputs()}
logits = session.run(None, feeds)[0]
peak = None
try:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024.0
except OSError:
    pass
if peak is None:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
print(json.dumps({"peak_mb": peak, "label": int(logits.argmax())}))
"""


def _texts(path: Path) -> list[str]:
    from edgebert.runtime.inputs import read_texts

    return read_texts(path)


def _footprint(kind: str, model: Path, tokenizer: Path, runs: int, threads: int) -> dict:
    walls, peaks, labels = [], [], set()
    for _ in range(runs):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", _CHILD, kind, str(model), str(tokenizer), str(threads), SENTENCE],
                              capture_output=True, text=True, check=True)
        walls.append(time.perf_counter() - start)
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        peaks.append(out["peak_mb"])
        labels.add(out["label"])
    return {"cold_start_s": statistics.median(walls), "cold_start_s_min": min(walls),
            "cold_start_s_max": max(walls), "peak_mb": statistics.median(peaks), "labels": sorted(labels)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="minilm", help="a fine-tuned classifier folder, or 'minilm' (random head)")
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--runs", type=int, default=5, help="fresh processes per file")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default=None, help="folder for the model files (default: a temporary one)")
    add_publish_option(ap)
    args = ap.parse_args(argv)
    out_dir = results_dir(args.publish)

    from edgebert.artifact import now_iso, write_json
    from edgebert.bench.protocol import environment
    from edgebert.compress.quantize import QuantizeConfig, quantize_onnx
    from edgebert.export import export_mobile, export_onnx
    from edgebert.export.fuse import model_file_bytes
    from edgebert.export.textin import make_text_in, validate_text_in
    from edgebert.models import load

    work = Path(args.work or tempfile.mkdtemp(prefix="textin-check-"))
    work.mkdir(parents=True, exist_ok=True)
    import torch

    torch.manual_seed(0)
    loaded = load(args.model, label_names=["negative", "positive"]) if args.model == "minilm" else load(args.model)
    tokenizer_dir = work / "tokenizer"
    loaded.tokenizer.save_pretrained(tokenizer_dir)
    fp32, int8, text = work / "model-fp32.onnx", work / "model.onnx", work / "model-text.onnx"
    export_onnx(loaded.model, loaded.tokenizer, fp32)
    quantize_onnx(fp32, int8, QuantizeConfig(mode="int8-dynamic"))
    made = make_text_in(int8, tokenizer_dir, text, max_length=args.max_length)

    checks = {}
    for name, path in (("sst2-dev", DATA / "sst2" / "dev.tsv"), ("banking77-test", DATA / "banking77" / "test.csv")):
        start = time.perf_counter()
        report = validate_text_in(text, int8, tokenizer_dir, _texts(path), strict=False)
        report["seconds"] = round(time.perf_counter() - start, 1)
        checks[name] = report
        print(name, {k: v for k, v in report.items() if k != "examples"}, flush=True)

    ort_reports = {}
    for name, path in (("token-in", int8), ("text-in", text)):
        r = export_mobile(path, work / "ort", check_usability=False)
        ort_reports[name] = {"ort_bytes": r["ort_bytes"], "max_abs_logit_diff": r["max_abs_logit_diff"],
                             "label_agreement": r["label_agreement"],
                             "custom_operators": [o for o in r["required_operators"] if "contrib" in o]}
    files = {"token-in .onnx": ("token", int8), "token-in .ort": ("token", work / "ort" / "model.ort"),
             "text-in .onnx": ("text", text), "text-in .ort": ("text", work / "ort" / "model-text.ort")}
    tokenizer_json = tokenizer_dir / "tokenizer.json"
    footprint = {}
    for name, (kind, path) in files.items():
        size = model_file_bytes(path) if path.suffix == ".onnx" else path.stat().st_size
        footprint[name] = {"bytes": size, **_footprint(kind, path, tokenizer_json, args.runs, args.threads)}
        if kind == "token":  # the app ships the tokenizer too
            footprint[name]["tokenizer_json_bytes"] = tokenizer_json.stat().st_size
        print(name, footprint[name], flush=True)

    command = "python benchmarks/textin_check.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    record = {"command": command.strip(), "date": now_iso(), "model": args.model, "max_length": args.max_length,
              "threads": args.threads, "runs": args.runs, "text_in": made, "validation": checks,
              "ort": ort_reports, "footprint": footprint, "environment": environment(args.threads)}
    write_json(out_dir / "textin_check.json", record)
    lines = [f"# Text-in models: {args.model}, int8 dynamic, max_length {args.max_length}", "",
             f"Command: `{record['command']}` ({record['date']}; CPU: {record['environment'].get('cpu', '?')}; "
             f"{args.threads} thread(s), medians of {args.runs} fresh processes)", "",
             "| data | texts | token ids differ | labels differ | max logit diff |", "|---|---|---|---|---|"]
    for name, r in checks.items():
        lines.append(f"| {name} | {r['texts']} | {r['token_mismatches']} | {r['label_mismatches']} | "
                     f"{r['max_abs_logit_diff']:.2g} |")
    lines += ["", "| file | MB | cold start s | peak MB |", "|---|---|---|---|"]
    for name, f in footprint.items():
        extra = f" (+ tokenizer.json {f['tokenizer_json_bytes'] / 1e6:.2f})" if "tokenizer_json_bytes" in f else ""
        lines.append(f"| {name} | {f['bytes'] / 1e6:.2f}{extra} | {f['cold_start_s']:.2f} | {f['peak_mb']:.0f} |")
    (out_dir / "textin_check.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"written: {out_dir / 'textin_check.json'}, {out_dir / 'textin_check.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
