"""edgebert.runtime.serve / ``edgebert serve``: the JSON API in process (Starlette TestClient), every
bad-request path, and the real server in a subprocess on 127.0.0.1 with torch blocked."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from click.testing import CliRunner
from conftest import CLI_WITHOUT_TORCH, NEGATIVE, POSITIVE, REPO, assert_clean_error

from edgebert.cli import main
from edgebert.runtime import Classifier, create_app

starlette_testclient = pytest.importorskip("starlette.testclient", reason="pip install -e '.[dev]' (starlette, httpx)")

MAX_BATCH = 4
MAX_BODY = 4096


@pytest.fixture(scope="module")
def clf(tiny_artifact_dir):
    return Classifier.load(tiny_artifact_dir, threads=1)


@pytest.fixture(scope="module")
def client(clf):
    with starlette_testclient.TestClient(create_app(clf, max_batch=MAX_BATCH, max_body_bytes=MAX_BODY)) as c:
        yield c


def test_predict_one_and_many_match_the_library(client, clf):
    r = client.post("/predict", json={"text": "i love this movie"})
    assert r.status_code == 200, r.text
    want = clf.predict("i love this movie")
    assert r.json() == {"prediction": want.to_dict()}
    texts = [POSITIVE[0], NEGATIVE[0], NEGATIVE[1], POSITIVE[1]]
    r = client.post("/predict", json={"texts": texts})
    assert r.status_code == 200, r.text
    assert r.json()["predictions"] == [p.to_dict() for p in clf.predict(texts)]
    assert [p["label"] for p in r.json()["predictions"]] == ["positive", "negative", "negative", "positive"]


def test_long_text_is_truncated_not_refused(client):
    r = client.post("/predict", json={"text": "great film " * 300})  # ~600 tokens, 3.3 kB
    assert r.status_code == 200 and r.json()["prediction"]["label"] == "positive"


def test_health_and_labels(client, clf):
    h = client.get("/health").json()
    assert h["status"] == "ok" and h["labels"] == 2 and h["max_length"] == clf.max_length
    assert h["provider"] == "CPUExecutionProvider" and h["provider_fallback"] is None  # what runs the model
    assert h["max_batch"] == MAX_BATCH and h["max_body_bytes"] == MAX_BODY and h["format"] == "onnxruntime"
    assert client.get("/labels").json() == {"labels": ["negative", "positive"], "unknown_label": "unknown",
                                            "threshold": None}


@pytest.mark.parametrize("body,status,message", [
    (b"{not json", 400, "malformed JSON"),
    (b"", 400, "empty body"),
    (b"\xff\xfe\x00garbage", 400, "malformed JSON"),
    (b"[" * 100_000 + b"]" * 100_000, 413, "over the limit"),
    (b"[" * 1500 + b"]" * 1500, 400, "nested too deeply"),  # under the size limit, past the parser's depth
    (b'["a text"]', 422, "must be a JSON object"),
    (b'"a text"', 422, "must be a JSON object"),
    (b"{}", 422, "exactly one of"),
    (b'{"text": "a", "texts": ["b"]}', 422, "unknown field|exactly one of"),
    (b'{"txt": "a"}', 422, r"unknown field\(s\) 'txt'"),
    (b'{"text": 5}', 422, "'text' must be a string, not a number"),
    (b'{"text": null}', 422, "not null"),
    (b'{"texts": "a"}', 422, "'texts' must be a list of strings, not a string"),
    (b'{"texts": []}', 422, "is empty"),
    (b'{"texts": ["a", 1]}', 422, r"texts\[1\] must be a string"),
    (b'{"texts": ["a", "b", "c", "d", "e"]}', 422, "5 texts; the limit is 4"),
    (b'{"text": ""}', 422, "'text' is empty"),  # a model asked about nothing still answers a label
    (b'{"text": " \\n\\t "}', 422, "'text' is empty"),
    (b'{"texts": ["a", "  "]}', 422, r"texts\[1\] is empty"),
    (b'{"text": "a", "text_pair": ""}', 422, "'text_pair' is empty"),
    (b'{"text": "a", "text_pairs": ["b"]}', 422, "'text_pairs' goes with 'texts'"),
    (b'{"texts": ["a"], "text_pairs": ["b", "c"]}', 422, "one second sentence per text"),
    (b'{"text_pair": "b"}', 422, "exactly one of"),
], ids=lambda v: None if not isinstance(v, bytes) else repr(v[:24]))
def test_bad_requests_get_4xx_json(client, body, status, message):
    r = client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == status, r.text
    data = r.json()
    assert data["status"] == status
    assert re.search(message, data["error"]), data["error"]
    assert client.get("/health").status_code == 200  # still serving


def test_body_limit_without_content_length(client):
    def chunks():  # a chunked upload announces no length: the limit must hold while streaming
        yield b'{"texts": ["'
        for _ in range(100):
            yield b"x" * 100
        yield b'"]}'

    r = client.post("/predict", content=chunks())
    assert r.status_code == 413 and "over the limit" in r.json()["error"]


def test_unknown_path_and_method(client):
    r = client.get("/nope")
    assert r.status_code == 404 and "POST /predict" in r.json()["error"]
    r = client.get("/predict")
    assert r.status_code == 405 and r.json()["status"] == 405


def test_unexpected_failure_is_a_500_and_the_app_keeps_serving(clf):
    class Flaky:
        labels, unknown_label, threshold = clf.labels, clf.unknown_label, None

        def __init__(self):
            self.calls = 0

        def predict(self, texts):
            self.calls += 1
            if self.calls == 1:
                raise RuntimeError("boom")
            return clf.predict(texts)

        def info(self):
            return clf.info()

    with starlette_testclient.TestClient(create_app(Flaky()), raise_server_exceptions=False) as c:
        r = c.post("/predict", json={"text": "i love it"})
        assert r.status_code == 500 and r.json()["error"] == "internal error: RuntimeError"
        assert c.post("/predict", json={"text": "i love it"}).status_code == 200


def test_concurrent_requests_are_batched_and_answered_in_order(clf):
    """Requests arriving while a model call runs share the next call (up to max_batch texts), and each
    gets its own predictions back."""
    import threading

    import anyio
    import httpx

    calls: list[list[str]] = []
    release = threading.Event()

    class Slow:
        labels, unknown_label, threshold = clf.labels, clf.unknown_label, None

        def predict(self, texts):
            calls.append(list(texts))
            release.wait(5)  # the first call holds until every request is queued
            return clf.predict(texts)

        def info(self):
            return clf.info()

    texts = POSITIVE[:3] + NEGATIVE[:3]
    app = create_app(Slow(), max_batch=4)

    async def main():
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            results = [None] * len(texts)

            async def one(i):
                results[i] = (await client.post("/predict", json={"text": texts[i]})).json()

            async with anyio.create_task_group() as tg:
                for i in range(len(texts)):
                    tg.start_soon(one, i)
                await anyio.sleep(0.3)
                release.set()
            return results

    results = anyio.run(main)
    assert [r["prediction"] for r in results] == [p.to_dict() for p in clf.predict(texts)]
    sizes = [len(c) for c in calls]
    assert max(sizes) == 4 and len(calls) <= 3  # six requests in at most three calls, never over max_batch
    assert sorted(t for c in calls for t in c) == sorted(texts)
    served = starlette_testclient.TestClient(app).get("/health").json()["served"]
    assert served == {"requests": 6, "texts": 6, "model_calls": len(calls)}


def test_create_app_rejects_bad_limits(clf):
    from edgebert.errors import EdgebertError

    with pytest.raises(EdgebertError, match="max_batch"):
        create_app(clf, max_batch=0)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _request(url, payload=None):
    data = None if payload is None else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
    req = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_real_server_in_a_subprocess_without_torch(tiny_artifact_dir):
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", CLI_WITHOUT_TORCH, "serve", str(tiny_artifact_dir),
                             "--port", str(port), "--threads", "1", "--log-level", "warning"],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                status, health = _request(base + "/health")
                break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    out, err = proc.communicate(timeout=5) if proc.poll() is not None else ("", "")
                    pytest.fail(f"server did not start (exit {proc.poll()}): {err}")
                time.sleep(0.2)
        assert status == 200 and health["status"] == "ok"
        status, body = _request(base + "/predict", {"texts": ["i love this movie", "hate it"]})
        assert status == 200 and [p["label"] for p in body["predictions"]] == ["positive", "negative"]
        assert _request(base + "/predict", b"{oops")[0] == 400
        assert _request(base + "/predict", {"text": 1})[0] == 422
        assert _request(base + "/labels")[1]["labels"] == ["negative", "positive"]
        assert proc.poll() is None  # bad requests did not stop it
    finally:
        proc.terminate()
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()


def test_serve_cli_errors(tiny_artifact_dir, tmp_path):
    runner = CliRunner()
    assert_clean_error(runner.invoke(main, ["serve", str(tmp_path / "missing")]), "does not exist")
    assert_clean_error(runner.invoke(main, ["serve", str(tiny_artifact_dir), "--port", "70000"]), "--port")
    with socket.socket() as s:  # an address in use: a message, not uvicorn's exit
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        assert_clean_error(runner.invoke(main, ["serve", str(tiny_artifact_dir), "--port", str(busy)]),
                           f"Cannot listen on 127.0.0.1:{busy}")


def test_serve_start_line_says_what_the_threshold_does(tiny_artifact_dir, monkeypatch):
    """No 'threshold None': the start line says there is none and the command that sets one."""
    import edgebert.runtime.serve as serve_mod

    monkeypatch.setattr(serve_mod, "serve", lambda app, **kw: None)  # start-up only, no server
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    runner = CliRunner()
    r = runner.invoke(main, ["serve", str(tiny_artifact_dir), "--port", port])
    assert r.exit_code == 0, r.output
    assert "None" not in r.stderr
    assert f"no confidence threshold, answers every text (to set one: edgebert calibrate {tiny_artifact_dir} " \
           "--data DATA --write)" in r.stderr
    r = runner.invoke(main, ["serve", str(tiny_artifact_dir), "--port", port, "--threshold", "0.5"])
    assert r.exit_code == 0, r.output
    assert "answers 'unknown' below confidence 0.5000" in r.stderr


def test_pairs_and_single_texts_never_share_a_model_call(clf):
    """An artifact that does not say whether it takes pairs accepts both; the batcher keeps them apart."""
    import anyio

    from edgebert.runtime.serve import _Batcher

    calls = []

    class Recording:
        labels = clf.labels

        def predict(self, texts, pairs=None):
            calls.append((list(texts), pairs))
            return clf.predict(texts, pairs)

    batcher = _Batcher(Recording(), max_batch=8)

    async def main():
        async with anyio.create_task_group() as tg:
            tg.start_soon(batcher.predict, ["the movie"])
            tg.start_soon(batcher.predict, ["the movie"], ["i love it"])
            tg.start_soon(batcher.predict, ["a film"], ["i hate it"])
            tg.start_soon(batcher.predict, ["fun"])

    anyio.run(main)
    assert [pairs is None for _, pairs in calls] == [True, False, True]
    assert calls[1] == (["the movie", "a film"], ["i love it", "i hate it"])


def test_unknown_pair_support_accepts_a_pair(client, clf):
    r = client.post("/predict", json={"text": "the movie", "text_pair": "i love it"})
    assert r.status_code == 200 and r.json()["prediction"] == clf.predict("the movie", "i love it").to_dict()
