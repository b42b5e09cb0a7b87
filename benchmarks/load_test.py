"""Load test of ``edgebert serve`` on 127.0.0.1: requests/s and p50 / p99 latency at a few concurrency levels.

    python benchmarks/load_test.py runs/artifacts/minilm-banking77-int8 --threads 2

Starts ``python -m edgebert serve ARTIFACT`` on a free 127.0.0.1 port (never another address),
waits for ``GET /health``, then for each concurrency level runs that many client threads, each
with its own keep-alive connection (``http.client``), sending ``POST /predict {"text": ...}``
with real sentences (BANKING77 test texts by default, in file order, cycled), until ``--requests``
requests are done or ``--seconds`` have passed, whichever comes first. A request counts as an
error unless it returns 200 with a prediction. Before the first level, ``--warmup`` untimed
requests. Latency = client-side time from sending the request to reading the whole response;
percentiles by :func:`edgebert.bench.protocol.summarize`. The server's peak RSS (``VmHWM`` of its
process) is read at the end. Exit status 1 if any request failed.

The client threads share the machine with the server: on a 2-core machine they take CPU from it,
so the figures are a lower bound of what the server does for remote clients. Results:
``runs/benchmarks/load_test/load_test.json`` and ``.md`` (``--publish``: ``benchmarks/results/load_test/``),
with the command and the load average.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from publish import add_publish_option, results_dir  # run as a script: benchmarks/ is on sys.path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "banking77" / "test.csv"
HOST = "127.0.0.1"  # the load test never leaves this machine


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def start_server(artifact: str, port: int, threads: int | None) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "edgebert", "serve", artifact, "--host", HOST, "--port", str(port),
           "--log-level", "warning"]
    if threads:
        cmd += ["--threads", str(threads)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"edgebert serve exited with {proc.returncode}: {proc.stderr.read().strip()}")
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise SystemExit("edgebert serve did not answer /health within 120 s")


def _post(conn: http.client.HTTPConnection, text: str) -> bool:
    conn.request("POST", "/predict", body=json.dumps({"text": text}).encode(),
                 headers={"content-type": "application/json"})
    resp = conn.getresponse()
    body = resp.read()
    return resp.status == 200 and "prediction" in json.loads(body)


def run_level(port: int, texts: list[str], concurrency: int, max_requests: int, max_seconds: float) -> dict:
    lock = threading.Lock()
    state = {"next": 0}
    latencies_ms: list[float] = []
    errors: list[str] = []
    deadline = time.monotonic() + max_seconds

    def worker():
        conn = http.client.HTTPConnection(HOST, port, timeout=60)
        while True:
            with lock:
                i = state["next"]
                if i >= max_requests or time.monotonic() >= deadline:
                    break
                state["next"] += 1
            t0 = time.perf_counter()
            error = None
            try:
                if not _post(conn, texts[i % len(texts)]):
                    error = "status other than 200, or no prediction in the answer"
            except (OSError, http.client.HTTPException, ValueError) as exc:
                error = f"{type(exc).__name__}: {exc}"
                conn.close()
                conn = http.client.HTTPConnection(HOST, port, timeout=60)
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                if error is None:
                    latencies_ms.append(elapsed)
                else:
                    errors.append(error)
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    from edgebert.bench.protocol import summarize

    done = len(latencies_ms) + len(errors)
    return {"concurrency": concurrency, "requests": done, "errors": len(errors), "error_samples": errors[:5],
            "seconds": round(wall, 3), "requests_per_s": round(len(latencies_ms) / wall, 2),
            "latency_ms": summarize(latencies_ms) if latencies_ms else None}


def proc_peak_rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("artifact", help="artifact folder to serve")
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="texts to send: .txt/.csv/.tsv/.jsonl (default: BANKING77 test.csv)")
    ap.add_argument("--concurrency", default="1,4,16", help="comma-separated client counts")
    ap.add_argument("--requests", type=int, default=500, help="requests per level (at most)")
    ap.add_argument("--seconds", type=float, default=60.0, help="time per level (at most)")
    ap.add_argument("--warmup", type=int, default=20)
    ap.add_argument("--threads", type=int, default=None, help="the server's intra-op threads")
    ap.add_argument("--out", type=Path, default=None,
                    help="result folder [default: runs/benchmarks/load_test, or with --publish "
                         "benchmarks/results/load_test]")
    add_publish_option(ap)
    args = ap.parse_args(argv)
    args.out = args.out or results_dir(args.publish) / "load_test"

    from edgebert.artifact import now_iso, write_json
    from edgebert.bench.protocol import environment
    from edgebert.runtime.inputs import read_texts

    if not args.data.is_file():
        raise SystemExit(f"{args.data} not found: pass --data FILE (real sentences; see ../shared/data)")
    texts = read_texts(args.data)
    levels = [int(x) for x in args.concurrency.split(",")]
    load_at_start = os.getloadavg()
    port = free_port()
    server = start_server(args.artifact, port, args.threads)
    try:
        warm = run_level(port, texts[::-1], 1, args.warmup, args.seconds)
        results = []
        for c in levels:
            before = json.loads(_get(port, "/health")).get("served", {})
            level = run_level(port, texts, c, args.requests, args.seconds)
            after = json.loads(_get(port, "/health")).get("served", {})
            calls = after.get("model_calls", 0) - before.get("model_calls", 0)
            level["model_calls"] = calls  # requests arriving during a call share the next one
            level["texts_per_model_call"] = round((after["texts"] - before["texts"]) / calls, 2) if calls else None
            results.append(level)
        health = json.loads(_get(port, "/health"))
        server_peak = proc_peak_rss_mb(server.pid)
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    command = "python benchmarks/load_test.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
    record = {"command": command, "date": now_iso(), "artifact": args.artifact,
              "data": os.path.relpath(args.data, ROOT),
              "texts": len(texts), "host": HOST, "server": health, "server_peak_rss_mb": server_peak,
              "warmup": {"requests": warm["requests"], "errors": warm["errors"]}, "levels": results,
              "total_errors": sum(r["errors"] for r in results) + warm["errors"],
              "loadavg_at_start": load_at_start, "loadavg_at_end": os.getloadavg(),
              "environment": environment(args.threads or 0)}
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "load_test.json", record)
    (args.out / "load_test.md").write_text(markdown(record), encoding="utf-8")
    print(markdown(record))
    return 1 if record["total_errors"] else 0


def _get(port: int, path: str) -> str:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    conn.request("GET", path)
    body = conn.getresponse().read().decode()
    conn.close()
    return body


def markdown(r: dict) -> str:
    s = r["server"]
    lines = ["# Load test: edgebert serve on 127.0.0.1", "",
             f"Command: `{r['command']}`  ",
             f"Date: {r['date']}; machine: {r['environment']['device_label']}; load average at start "
             f"{r['loadavg_at_start'][0]:.2f} (client threads share the CPU with the server; re-run on a quiet "
             "machine for stable figures).  ",
             f"Artifact `{r['artifact']}` ({s['labels']} labels, {s['format']}, server threads {s['threads']}); "
             f"one text per request, {r['texts']} real texts from `{r['data']}`; server peak RSS "
             f"{r['server_peak_rss_mb']:.0f} MB.", "",
             "| concurrency | requests | errors | seconds | requests/s | p50 ms | p90 ms | p99 ms "
             "| texts per model call |",
             "|---|---|---|---|---|---|---|---|---|"]
    for lv in r["levels"]:
        lat = lv["latency_ms"] or {}
        lines.append(f"| {lv['concurrency']} | {lv['requests']} | {lv['errors']} | {lv['seconds']:.1f} | "
                     f"{lv['requests_per_s']:.1f} | {lat.get('p50', float('nan')):.1f} | "
                     f"{lat.get('p90', float('nan')):.1f} | {lat.get('p99', float('nan')):.1f} | "
                     f"{lv.get('texts_per_model_call')} |")
    lines += ["", f"Errors in total: {r['total_errors']}. Texts per model call: requests that arrive while the "
              "model runs share its next call (edgebert.runtime.serve batching).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
