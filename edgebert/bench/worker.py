"""Memory and cold-load measurement of one variant in a fresh process.

Run as ``python -m edgebert.bench.worker`` with a JSON job on stdin::

    {"variant": VariantSpec.to_json(), "threads": 2, "texts": ["...", ...], "runs": 8,
     "max_length": 128, "ballast_mb": 0, "text_pairs": ["...", ...] | null}

It imports only the variant's runtime (onnxruntime + tokenizers for an ONNX file: torch is never
imported), records the RSS, loads the variant (timed: the cold load), runs ``runs`` batch-1
inferences on ``texts`` (joined to ``text_pairs`` for a sentence-pair task) and prints one JSON line::

    {"rss_start_mb", "rss_runtime_mb", "rss_loaded_mb", "rss_end_mb", "peak_rss_mb", "peak_source",
     "ru_maxrss_mb", "increase_mb", "load_s", "runtime_modules", "torch_imported",
     "cuda_max_allocated_mb"}

``ballast_mb`` (tests only) allocates and touches a numpy buffer of that size after the runtime
import, so a test can check that one variant's memory never shows in another's figures.
On failure it prints ``{"error": "..."}`` and exits with status 1.
"""

from __future__ import annotations

import importlib
import json
import sys
import time
from pathlib import Path
from typing import Any

#: modules that make up each runtime (imported before the baseline RSS is read)
RUNTIME_MODULES = {
    "onnxruntime": ("numpy", "onnxruntime", "tokenizers"),
    "torchscript": ("numpy", "torch", "tokenizers"),
    "pytorch": ("numpy", "torch", "transformers", "tokenizers"),
    "tensorrt": ("numpy", "torch", "tensorrt", "tokenizers"),
    "openvino": ("numpy", "openvino", "tokenizers"),
}


class _FastTokenizer:
    """Batch-1 tokenization with the ``tokenizers`` library only (no transformers, no torch)."""

    def __init__(self, tokenizer_json: Path, max_length: int):
        from tokenizers import Tokenizer

        self.tk = Tokenizer.from_file(str(tokenizer_json))
        self.tk.no_padding()
        self.tk.enable_truncation(max_length)

    def __call__(self, text: str, pair: str | None = None) -> dict[str, Any]:
        import numpy as np

        e = self.tk.encode(text, pair)
        return {"input_ids": np.asarray([e.ids], dtype=np.int64),
                "attention_mask": np.asarray([e.attention_mask], dtype=np.int64),
                "token_type_ids": np.asarray([e.type_ids], dtype=np.int64)}


def _tokenizer(spec, max_length: int):
    tok_json = Path(spec.tokenizer_dir or "") / "tokenizer.json"
    if spec.runtime != "pytorch" and tok_json.is_file():
        return _FastTokenizer(tok_json, max_length)
    from edgebert.bench.variants import encode_numpy, load_hf_tokenizer

    hf = load_hf_tokenizer(spec.tokenizer_dir)
    return lambda text, pair=None: encode_numpy(hf, [text], None if pair is None else [pair], truncation=True,
                                                max_length=max_length)


def measure(job: dict[str, Any]) -> dict[str, Any]:
    """Run the job (see the module doc) in this process and return the measurements."""
    from edgebert.bench.protocol import peak_rss_mb, rss_mb, ru_maxrss_mb
    from edgebert.bench.variants import VariantSpec, open_runner

    spec = VariantSpec.from_json(job["variant"])
    threads = int(job.get("threads") or 1)
    result: dict[str, Any] = {"rss_start_mb": rss_mb()}
    modules = RUNTIME_MODULES.get(spec.runtime, ())
    for name in modules:
        importlib.import_module(name)
    if "torch" in modules:
        import torch

        torch.set_num_threads(threads)
    result["rss_runtime_mb"] = rss_mb()
    result["runtime_modules"] = list(modules)
    ballast = None
    if job.get("ballast_mb"):
        import numpy as np

        ballast = np.ones(int(job["ballast_mb"]) * 1024 * 1024, dtype=np.uint8)  # touched: resident
    t0 = time.perf_counter()
    runner = open_runner(spec, threads)
    result["load_s"] = time.perf_counter() - t0
    result["rss_loaded_mb"] = rss_mb()
    # a text-in graph tokenizes itself: no tokenizer is loaded (its memory would count against it)
    tokenize = None if getattr(runner, "text_in", False) else _tokenizer(spec, int(job.get("max_length") or 128))
    texts = list(job.get("texts") or ["a short sentence"])
    pairs = job.get("text_pairs")
    for i in range(int(job.get("runs") or 1)):
        t0 = time.perf_counter()
        k = i % len(texts)
        if getattr(runner, "text_in", False):  # the graph tokenizes: it is fed the text itself
            feeds = runner.prepare_texts([texts[k]], [pairs[k]] if pairs else None)
        else:
            feeds = runner.prepare(tokenize(texts[k], pairs[k] if pairs else None))
        runner.logits(runner(feeds))
        if i == 0:  # includes torch.compile's compilation for compiled variants (it is lazy)
            result["first_call_s"] = time.perf_counter() - t0
    if runner.fell_back_at is not None:  # compiling failed in this process: it ran eager
        result["torch_compile_fallback"] = spec.notes[-1]
    result["rss_end_mb"] = rss_mb()
    result["peak_rss_mb"], result["peak_source"] = peak_rss_mb()
    result["ru_maxrss_mb"] = ru_maxrss_mb()  # includes the parent's RSS on Linux: not the peak
    base = result["rss_runtime_mb"]
    result["increase_mb"] = result["peak_rss_mb"] - base if base is not None else None
    result["torch_imported"] = "torch" in sys.modules
    result["cuda_max_allocated_mb"] = None
    if spec.device == "cuda" and "torch" in sys.modules:
        import torch

        result["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
    del ballast
    return result


def main() -> int:
    try:
        result = measure(json.loads(sys.stdin.read()))
    except Exception as exc:  # reported to the parent as data; the parent marks the row
        text = str(exc).strip()
        print(json.dumps({"error": f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
