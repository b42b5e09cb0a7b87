"""CI check: the device install, `pip install edgebert` alone, runs the runtime without PyTorch.

    python tests/runtime_install_check.py        # from the checkout; about 2 minutes, mostly pip

In a fresh virtual environment (``python -m venv``), installs this checkout without extras and not
editable (what a device gets), then checks that:

- torch and transformers are not importable there, and ``pip check`` finds the install consistent;
- ``edgebert predict`` labels texts with the committed tiny artifact (``tests/data/tiny-artifact``);
- ``edgebert serve`` answers ``POST /predict`` on 127.0.0.1 (a free port), and stops on SIGTERM;
- a training command (``edgebert finetune``) says in one line to install ``edgebert[train]`` (exit 2).

Exits non-zero with a message at the first failed check. Standard library only: it runs with whatever
Python runs CI, and the environment it builds is removed afterwards.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ARTIFACT = REPO / "tests" / "data" / "tiny-artifact"
TEXTS = ["i love this movie", "i hate this movie"]
EXPECTED = ["positive", "negative"]


class CheckFailed(Exception):
    pass


def run(cmd: list, *, cwd: Path, env: dict, timeout: float, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if ok and proc.returncode != 0:
        raise CheckFailed(f"{' '.join(map(str, cmd))} exited {proc.returncode}:\n{proc.stdout}{proc.stderr}")
    return proc


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, body: dict | None = None, timeout: float = 10) -> dict:
    data = None if body is None else json.dumps(body).encode()
    with urllib.request.urlopen(urllib.request.Request(url, data=data), timeout=timeout) as resp:
        return json.loads(resp.read())


def check_serve(edgebert: Path, cwd: Path, env: dict) -> None:
    port = free_port()
    server = subprocess.Popen([str(edgebert), "serve", str(ARTIFACT), "--host", "127.0.0.1", "--port", str(port),
                               "--threads", "1"], cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                raise CheckFailed(f"edgebert serve exited {server.returncode} before answering:\n{server.stdout.read()}")
            try:
                request(f"http://127.0.0.1:{port}/health", timeout=2)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise CheckFailed("edgebert serve did not answer GET /health within 60 s") from None
                time.sleep(0.3)
        answer = request(f"http://127.0.0.1:{port}/predict", {"texts": TEXTS})
        labels = [p["label"] for p in answer["predictions"]]
        if labels != EXPECTED:
            raise CheckFailed(f"edgebert serve answered {labels}, expected {EXPECTED}: {answer}")
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            raise CheckFailed("edgebert serve did not stop within 20 s of SIGTERM") from None
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def check(workdir: Path) -> None:
    # nothing of the checkout or of the calling environment may leak into the fresh one
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    venv = workdir / "venv"
    run([sys.executable, "-m", "venv", venv], cwd=workdir, env=env, timeout=300)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python, edgebert = bindir / "python", bindir / "edgebert"
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"
    run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", REPO], cwd=workdir, env=env,
        timeout=900)
    run([python, "-m", "pip", "check"], cwd=workdir, env=env, timeout=120)
    for module in ("torch", "transformers"):
        if run([python, "-c", f"import {module}"], cwd=workdir, env=env, timeout=120, ok=False).returncode == 0:
            raise CheckFailed(f"{module} is importable in the runtime-only install: the base package pulls it in")
    where = run([python, "-c", "import edgebert; print(edgebert.__file__)"], cwd=workdir, env=env, timeout=60)
    if not Path(where.stdout.strip()).is_relative_to(venv):
        raise CheckFailed(f"edgebert was imported from {where.stdout.strip()}, not from the fresh install")

    out = run([edgebert, "predict", ARTIFACT, *TEXTS, "--json", "--threads", "1"], cwd=workdir, env=env, timeout=120)
    labels = [p["label"] for p in json.loads(out.stdout)]
    if labels != EXPECTED:
        raise CheckFailed(f"edgebert predict answered {labels}, expected {EXPECTED}:\n{out.stdout}")

    check_serve(edgebert, workdir, env)

    train = run([edgebert, "finetune", "--data", "intents", "--out", workdir / "ft"], cwd=workdir, env=env,
                timeout=120, ok=False)
    lines = train.stderr.strip().splitlines()
    if train.returncode != 2 or len(lines) != 1 or "pip install 'edgebert[train]'" not in lines[0]:
        raise CheckFailed(f"edgebert finetune without the train extra: exit {train.returncode}, expected 2 and one "
                          f"line naming pip install 'edgebert[train]':\n{train.stdout}{train.stderr}")


def main() -> int:
    start = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="edgebert-runtime-install-"))
    try:
        check(workdir)
    except (CheckFailed, subprocess.TimeoutExpired) as exc:
        print(f"runtime-only install check FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"runtime-only install check passed in {time.monotonic() - start:.0f} s: pip install . without torch or "
          f"transformers; edgebert predict and serve on {ARTIFACT.relative_to(REPO)}; finetune asks for [train]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
