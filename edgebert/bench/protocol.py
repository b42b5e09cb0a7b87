"""The benchmark protocol: how edgebert measures latency, throughput and memory. All of it lives here.

Every number ``edgebert bench`` reports is produced by the rules below; change them here only, and
bump :data:`PROTOCOL_VERSION` when a change makes new figures incomparable with old ones.

Inputs
    Real sentences from the dataset split, tokenized once per variant before any timing
    (tokenization is *not* timed: the figures are model inference only). Batch-1 latency runs each
    sentence at its own length (no padding, truncated to ``max_length`` tokens); the optional fixed
    shape block pads / truncates every sentence to exactly ``seq_len`` tokens; throughput runs
    batches of ``batch`` sentences sorted by length with dynamic padding (MLPerf "Offline" style:
    the system may order the samples as it likes).

Threads
    Fixed and recorded: default = physical cores available to this process. PyTorch gets
    ``torch.set_num_threads(n)``; onnxruntime sessions get ``intra_op_num_threads = n``,
    ``inter_op_num_threads = 1`` (sequential executor) and thread spinning **off**
    (``session.intra_op.allow_spinning = "0"``, same for inter_op). With spinning on, a session's
    idle threads keep spinning after each run and steal the cores from the next variant in the
    interleaved schedule (measured: int8 MiniLM p50 4.4 ms -> 17.6 ms).

Schedule
    Per variant, ``warmup`` untimed runs first. Then ``rounds`` rounds; in every round each live
    variant runs its whole latency workload once (plus the fixed-shape workload and one throughput
    pass), variants taking turns round-robin with the starting variant rotated each round
    (:func:`round_order`), so slow drifts of a noisy machine (thermal throttling, a neighbour's
    job) hit every variant alike. When a variant resumes in a round, one untimed run re-primes
    its caches. All variants share one process ("in-process, interleaved, ORT spinning off").

Timing
    ``time.perf_counter_ns`` around one call; on CUDA the call ends with
    ``torch.cuda.synchronize()`` so the time covers the kernels, not just their launch.

Statistics
    Percentiles are taken over *all* timed runs of all rounds (numpy's default linear
    interpolation): p10, p25, p50, p75, p90, p99, plus mean, std (sample, ddof=1), min, max and
    IQR = p75 - p25, all in milliseconds. Reports show a spread (p10-p90) next to every p50, never
    a bare single figure. Throughput is samples/s per round; its mean, min, max and std over rounds.
    The ratio column is a variant's p50 over the reference variant's p50.

Uncertainty
    Every variant times the same sentences in the same interleaved rounds, so its batch-1 timings form
    a (rounds x sentences) matrix (``latency.rounds_ms`` in bench.json) aligned with every other
    variant's. A ratio of two p50s gets a paired bootstrap interval (:func:`bootstrap_ratio`): rounds
    and sentences are redrawn with replacement, the same draw for both variants, 2000 times; the
    interval is the 2.5-97.5 percentiles of the redrawn ratios (95 %). It covers both the choice of
    sentences and the machine's round-to-round noise. ``latency.spread`` separates the two:
    ``within_sentence`` is the median, over sentences, of one sentence's (max - min) / median across
    rounds (measurement noise); ``between_sentences`` is the IQR over p50 of the sentences' medians
    (the spread of lengths and content).

Memory
    Measured in a *fresh* Python process per variant (``python -m edgebert.bench.worker``) that
    imports only that variant's runtime (onnxruntime + tokenizers for an ONNX file: no torch),
    loads the variant (load time = this cold load, in seconds) and runs a few inferences.
    Reported: RSS after importing the bare runtime (``VmRSS`` from ``/proc/self/status``), peak RSS
    (``VmHWM``; ``getrusage(RUSAGE_SELF).ru_maxrss`` is recorded too, but on Linux a spawned
    process inherits its parent's high-water mark there, see :func:`peak_rss_mb`) and the increase
    of the peak over the bare runtime;
    on CUDA also ``torch.cuda.max_memory_allocated``. Model size is the bytes of the model files on
    disk (ONNX external data included; the tokenizer is not counted).

Environment
    CPU model and the flags that decide kernel choice (avx2, avx512f, avx512_vnni, amx, neon/asimd),
    physical cores, threads used, GPU, library versions, Jetson power mode where readable.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

#: bump when a protocol change makes new figures incomparable with older bench.json files
PROTOCOL_VERSION = 1

DEFAULT_ROUNDS = 5
DEFAULT_WARMUP = 10
DEFAULT_LATENCY_SAMPLES = 200
DEFAULT_BATCH = 32
DEFAULT_MAX_LENGTH = 128
#: inferences the memory worker runs after loading (batch 1, real sentences)
MEMORY_RUNS = 8

ISOLATION = "in-process, interleaved, ORT spinning off"
TIMER = "time.perf_counter_ns"
PERCENTILES = (10, 25, 50, 75, 90, 99)

#: CPU flags that decide which kernels torch / onnxruntime pick, as /proc/cpuinfo spells them
# the CPU features that decide onnxruntime's int8 / fp16 kernels: read with the host's description
from edgebert.artifact import FLAGS_OF_INTEREST, cpu_flags, flags_of_interest  # noqa: E402,F401


def protocol_settings(*, threads: int, rounds: int, warmup: int, latency_samples: int, batch: int,
                      seq_len: int | None, max_length: int, device: str) -> dict[str, Any]:
    """The protocol block of bench.json: every setting that shapes the figures."""
    return {
        "version": PROTOCOL_VERSION,
        "isolation": ISOLATION,
        "timer": TIMER,
        "threads": threads,
        "ort_intra_op_num_threads": threads,
        "ort_inter_op_num_threads": 1,
        "ort_allow_spinning": False,
        "rounds": rounds,
        "rotate_start_each_round": True,
        "warmup_runs": warmup,
        "rewarm_runs_per_round": 1,
        "latency_samples": latency_samples,
        "latency_inputs": "real sentences at their own length, batch 1, no padding",
        "fixed_seq_len": seq_len,
        "max_length": max_length,
        "throughput_batch": batch,
        "throughput_inputs": "the latency sentences, length-sorted batches, dynamic padding",
        "percentiles": list(PERCENTILES),
        "percentile_method": "numpy linear interpolation over all timed runs",
        "tokenization_timed": False,
        "memory": "fresh subprocess per variant: bare runtime import, load, "
                  f"{MEMORY_RUNS} batch-1 inferences; peak = VmHWM (ru_maxrss where /proc is absent)",
        "device": device,
    }


# -- statistics -------------------------------------------------------------------------------

def summarize(values_ms: Sequence[float]) -> dict[str, Any]:
    """Spread of a set of timings in ms: n, mean, std, min, p10..p99, max, iqr (see module doc)."""
    a = np.asarray(values_ms, dtype=np.float64)
    if a.size == 0:
        return {"n": 0}
    pct = np.percentile(a, PERCENTILES)
    out: dict[str, Any] = {"n": int(a.size), "mean": float(a.mean()),
                           "std": float(a.std(ddof=1)) if a.size > 1 else 0.0, "min": float(a.min())}
    out.update({f"p{p}": float(v) for p, v in zip(PERCENTILES, pct)})
    out["max"] = float(a.max())
    out["iqr"] = out["p75"] - out["p25"]
    return out


def summarize_ns(values_ns: Sequence[int]) -> dict[str, Any]:
    """:func:`summarize` of ``perf_counter_ns`` durations (converted to ms)."""
    return summarize(np.asarray(values_ns, dtype=np.float64) / 1e6)


def rounds_matrix(values_ns: Sequence[int], rounds: int, sentences: int) -> np.ndarray | None:
    """Batch-1 timings as a (rounds x sentences) matrix in ms, or None where there are not that many (a
    variant whose timing restarted)."""
    a = np.asarray(values_ns, dtype=np.float64) / 1e6
    if rounds < 1 or sentences < 1 or a.size != rounds * sentences:
        return None
    return a.reshape(rounds, sentences)


def bootstrap_ratio(numerator_ms: np.ndarray, denominator_ms: np.ndarray, *, resamples: int = 2000,
                    level: float = 0.95, seed: int = 0) -> dict[str, Any] | None:
    """p50(numerator) / p50(denominator) of two (rounds x sentences) matrices timed on the same sentences in
    the same rounds, with a paired bootstrap interval over rounds and sentences (see the module doc);
    None where the matrices are not aligned."""
    a, b = np.asarray(numerator_ms, dtype=np.float64), np.asarray(denominator_ms, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape or a.size == 0:
        return None
    rng = np.random.default_rng(seed)
    n_rounds, n_sentences = a.shape
    ratios = np.empty(resamples)
    for i in range(resamples):
        r = rng.integers(0, n_rounds, n_rounds)
        c = rng.integers(0, n_sentences, n_sentences)
        ratios[i] = np.median(a[np.ix_(r, c)]) / np.median(b[np.ix_(r, c)])
    tail = (1 - level) / 2
    low, high = np.quantile(ratios, [tail, 1 - tail])
    return {"ratio": float(np.median(a) / np.median(b)), "low": float(low), "high": float(high), "level": level,
            "resamples": resamples, "rounds": n_rounds, "sentences": n_sentences}


def measurement_spread(matrix_ms: np.ndarray) -> dict[str, Any]:
    """How much of a variant's latency spread is the machine's (one sentence across rounds) and how much
    the sentences' (their medians across each other); see the module doc."""
    m = np.asarray(matrix_ms, dtype=np.float64)
    per_sentence = np.median(m, axis=0)
    within = (m.max(axis=0) - m.min(axis=0)) / np.where(per_sentence > 0, per_sentence, np.nan)
    q25, q50, q75 = np.percentile(per_sentence, [25, 50, 75])
    return {"within_sentence": float(np.nanmedian(within)) if m.shape[0] > 1 else None,
            "between_sentences": float((q75 - q25) / q50) if q50 > 0 else None,
            "rounds": int(m.shape[0]), "sentences": int(m.shape[1])}


def throughput_summary(samples_per_s: Sequence[float], *, batch: int, samples: int) -> dict[str, Any]:
    """Throughput over rounds (samples/s): mean, min, max, std and the workload it came from."""
    a = np.asarray(samples_per_s, dtype=np.float64)
    if a.size == 0:
        return {"rounds": 0, "batch": batch, "samples_per_round": samples}
    return {"rounds": int(a.size), "batch": batch, "samples_per_round": samples,
            "mean": float(a.mean()), "min": float(a.min()), "max": float(a.max()),
            "std": float(a.std(ddof=1)) if a.size > 1 else 0.0}


# -- schedule and timing ----------------------------------------------------------------------

def round_order(names: Sequence[str], round_index: int) -> list[str]:
    """The variants' turn order in round ``round_index``: rotated so round k starts at variant k."""
    names = list(names)
    if not names:
        return []
    k = round_index % len(names)
    return names[k:] + names[:k]


def time_calls(call: Callable[[Any], Any], inputs: Sequence[Any]) -> list[int]:
    """Run ``call`` once per input; return each duration in ns (``call`` syncs devices itself)."""
    out = []
    clock = time.perf_counter_ns
    for x in inputs:
        t0 = clock()
        call(x)
        out.append(clock() - t0)
    return out


def warm_up(call: Callable[[Any], Any], inputs: Sequence[Any], runs: int) -> None:
    """``runs`` untimed calls, cycling over ``inputs``."""
    for i in range(max(0, runs)):
        call(inputs[i % len(inputs)])


# -- threads and sessions ---------------------------------------------------------------------

def available_cpus() -> int:
    """Logical CPUs this process may run on (affinity / cgroup cpuset aware)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def physical_cores() -> int:
    """Physical cores of the machine that this process may use (hyper-threads not counted)."""
    cores: set[tuple[str, str]] = set()
    try:
        phys = core = None
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "physical id":
                phys = value.strip()
            elif key == "core id":
                core = value.strip()
            elif not line.strip():
                if core is not None:
                    cores.add((phys or "0", core))
                phys = core = None
        if core is not None:
            cores.add((phys or "0", core))
    except OSError:
        pass
    n = len(cores) or os.cpu_count() or 1
    return max(1, min(n, available_cpus()))


def default_threads() -> int:
    """Thread count used when none is given: the physical cores available."""
    return physical_cores()


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Set ``torch.set_num_threads(n)`` for the block and restore the previous value after."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def ort_session_options(threads: int):
    """onnxruntime SessionOptions of the protocol: the device runtime's own
    (:func:`edgebert.runtime.backends.session_options`: sequential, spinning off), ``threads`` fixed."""
    from edgebert.runtime.backends import session_options

    return session_options(int(threads))


def ort_providers(device: str) -> list[str]:
    """Execution providers asked for on ``device`` ("cpu" or "cuda"), CPU always last as the fallback.
    Whether onnxruntime can use them is the session's to say (:class:`edgebert.bench.variants.OnnxRunner`
    records the providers it actually ran on, and the fallback)."""
    if device == "cuda":
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


# -- memory (fresh process) -------------------------------------------------------------------

def rss_mb() -> float | None:
    """Current resident set size of this process (VmRSS), MB; None where /proc is absent."""
    return _proc_status_mb("VmRSS")


def _proc_status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0  # kB
    except (OSError, ValueError, IndexError):
        pass
    return None


def ru_maxrss_mb() -> float:
    """``getrusage(RUSAGE_SELF).ru_maxrss`` in MB (see :func:`peak_rss_mb` for its Linux caveat)."""
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0  # bytes vs kB


def peak_rss_mb() -> tuple[float, str]:
    """(peak resident set size of this process so far in MB, where the figure comes from).

    On Linux ``ru_maxrss`` of a freshly spawned process is not its own: exec keeps the high-water
    mark of the address space it replaced, i.e. the *parent's* RSS at fork time (a 60 MB
    onnxruntime worker started by a 460 MB bench process reports 460 MB). ``VmHWM`` in
    /proc/self/status belongs to the new address space only, so it is used where it exists;
    ``ru_maxrss`` elsewhere (macOS).
    """
    hwm = _proc_status_mb("VmHWM")
    if hwm is not None:
        return hwm, "VmHWM"
    return ru_maxrss_mb(), "ru_maxrss"


def measure_memory(job: dict[str, Any], *, timeout: float = 900.0) -> dict[str, Any]:
    """Run one variant in a fresh ``python -m edgebert.bench.worker`` process; return its report.

    ``job`` is the worker's JSON spec (see :mod:`edgebert.bench.worker`). On failure the result is
    ``{"error": "..."}`` with the worker's last message instead of the measurements.
    """
    env = dict(os.environ)
    threads = str(job.get("threads") or default_threads())
    # Thread pools size themselves at import, before the worker could set them.
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, TOKENIZERS_PARALLELISM="false")
    try:
        proc = subprocess.run([sys.executable, "-m", "edgebert.bench.worker"], input=json.dumps(job),
                              capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"memory worker did not finish within {timeout:.0f} s"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if lines:
        try:
            return json.loads(lines[-1])
        except json.JSONDecodeError:
            pass
    tail = [ln for ln in (proc.stderr or "").strip().splitlines() if ln.strip()]
    return {"error": f"memory worker exited with code {proc.returncode}: "
                     f"{tail[-1] if tail else 'no output'}"}


# -- environment ------------------------------------------------------------------------------

def jetson_power_mode() -> dict[str, Any] | None:
    """The NVIDIA Jetson power mode (``nvpmodel -q``) where readable; None off Jetson."""
    conf = Path("/etc/nvpmodel.conf")
    if not conf.exists() and shutil.which("nvpmodel") is None:
        return None
    info: dict[str, Any] = {"conf": str(conf) if conf.exists() else None, "mode": None}
    if shutil.which("nvpmodel"):
        try:
            out = subprocess.run(["nvpmodel", "-q"], capture_output=True, text=True, timeout=10).stdout
            for line in out.splitlines():
                if "Power Mode" in line:
                    info["mode"] = line.split(":", 1)[1].strip()
                elif line.strip().isdigit():
                    info["mode_id"] = int(line.strip())
        except (OSError, subprocess.SubprocessError):
            pass
    status = Path("/var/lib/nvpmodel/status")
    if info["mode"] is None and status.is_file():
        with contextlib.suppress(OSError):
            info["mode"] = status.read_text().strip()
    return info


def environment(threads: int) -> dict[str, Any]:
    """The environment block of bench.json (see the module doc)."""
    from edgebert.artifact import host_info, library_versions

    host = host_info()
    env: dict[str, Any] = {
        "host": host,
        "hostname": host.get("hostname"),
        "cpu": host.get("processor"),
        "machine": platform.machine(),
        "cpu_flags": flags_of_interest(),
        "physical_cores": physical_cores(),
        "logical_cpus_available": available_cpus(),
        "threads": threads,
        "gpu": host.get("gpu"),
        "cuda": bool(host.get("cuda")),
        "jetson_power_mode": jetson_power_mode(),
        "libraries": library_versions(),
    }
    env["device_label"] = device_label(env)
    return env


def device_label(env: dict[str, Any]) -> str:
    """A short name of the machine a bench ran on: host name and CPU (and GPU)."""
    label = f"{env.get('hostname') or '?'} ({env.get('cpu') or env.get('machine') or '?'}"
    if env.get("gpu"):
        label += f", {env['gpu']}"
    return label + ")"
