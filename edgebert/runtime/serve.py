"""``edgebert serve``: a small HTTP JSON service around one :class:`~edgebert.runtime.Classifier`.

Why Starlette + uvicorn: a single process on a device needs an HTTP/1.1 server whose request
parsing is someone's maintained, fuzzed code (uvicorn on h11), not a hand-written parser, and a
framework that lets this module read the body itself, so that its size is bounded while it
streams in. Both are small pure-Python wheels (with anyio, idna and h11: 3.4 MB installed), have
no compiled dependencies (they run wherever Python runs, ARM boards included), and are widely used
and actively released (Starlette is FastAPI's core). Werkzeug's server is documented as a development
server only; aiohttp brings compiled extensions; FastAPI adds pydantic request models this API
does not need.

Endpoints (all answers are JSON; errors are ``{"error": "...", "status": code}``)::

    POST /predict  {"text": "..."}          -> {"prediction": {"label", "score", "index", "abstained"}}
                   {"texts": ["...", ...]}  -> {"predictions": [...]}   (in input order)
                   sentence-pair models:  {"text": "...", "text_pair": "..."}
                                          {"texts": [...], "text_pairs": [...]}  (one per text)
    GET  /health                            -> {"status": "ok", "format", "provider", "labels", "max_length",
                                                "text_pair", ..., "served": {"requests", "texts", "model_calls"}}
    GET  /labels                            -> {"labels": [...], "unknown_label", "threshold"}

Bounds: the body is read in chunks and refused with 413 as soon as it passes ``max_body_bytes``
(or when Content-Length announces more); ``texts`` may hold at most ``max_batch`` texts (422
above); every text is truncated to the model's ``max_length`` tokens by the tokenizer. Malformed
JSON gives 400; a body that is not an object, a missing or unknown field, a wrong type, an empty
text, or a missing / unexpected second sentence (the artifact's ``deploy.text_pair``) gives 422;
an unknown path 404, a wrong method 405. An unexpected failure is logged and answered with
500; the process keeps serving.

Batching: one model call runs at a time, in a worker thread (the call already uses the model's
intra-op threads; the event loop keeps answering /health meanwhile). Requests that arrive while a
call runs wait, and the next call takes all of them together, up to ``max_batch`` texts
(:class:`_Batcher`). A lone request never waits for company, so batching adds no latency at low
load and under concurrent load turns many batch-1 calls into a few batched ones (texts of one call
are sorted by length and padded per batch by the classifier, so unequal lengths cost little).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from edgebert.errors import EdgebertError, MissingDependencyError
from edgebert.runtime.classifier import EMPTY_TEXT, is_blank

__all__ = ["DEFAULT_MAX_BATCH", "DEFAULT_MAX_BODY_BYTES", "create_app", "serve"]

#: most texts one POST /predict may carry
DEFAULT_MAX_BATCH = 64
#: largest request body accepted, bytes (1 MiB: 64 texts of ~16 kB each)
DEFAULT_MAX_BODY_BYTES = 1 << 20

_FIELDS = ("text", "texts", "text_pair", "text_pairs")
log = logging.getLogger("edgebert.serve")


class _RequestError(Exception):
    """A client mistake: answered with ``status`` and ``message``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _import_starlette():
    try:
        import starlette  # noqa: F401
    except ImportError:
        raise MissingDependencyError("starlette", purpose="edgebert serve") from None


def _error(status: int, message: str):
    from starlette.responses import JSONResponse

    return JSONResponse({"error": message, "status": status}, status_code=status)


async def _read_body(request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise _RequestError(400, f"invalid Content-Length header {declared!r}") from None
        if size > limit:
            raise _RequestError(413, f"request body of {size} bytes is over the limit of {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():  # chunked bodies announce no length: count as they arrive
        size += len(chunk)
        if size > limit:
            raise _RequestError(413, f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def _parse(body: bytes, max_batch: int, text_pair: bool | None = None) -> tuple[list[str], list[str] | None, bool]:
    """(texts, their second sentences or None, whether the request used "text") from a POST /predict
    body; ``text_pair``: whether the model classifies sentence pairs (None: not known, both accepted)."""
    if not body.strip():
        raise _RequestError(400, 'empty body; send JSON: {"text": "..."} or {"texts": ["...", ...]}')
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, undecodable bytes, absurd nesting
        raise _RequestError(400, f"malformed JSON: {exc}" if isinstance(exc, ValueError) else "malformed JSON: "
                            "nested too deeply") from None
    if not isinstance(payload, dict):
        raise _RequestError(422, f'the body must be a JSON object {{"text": ...}} or {{"texts": [...]}}, '
                                 f"not a JSON {type(payload).__name__}")
    shape = ('{"text": "...", "text_pair": "..."} or {"texts": [...], "text_pairs": [...]}' if text_pair else
             "exactly one of 'text' (a string) or 'texts' (a list of strings)")
    unknown = sorted(k for k in payload if k not in _FIELDS)
    if unknown:
        raise _RequestError(422, f"unknown field(s) {', '.join(repr(k) for k in unknown)}; send {shape}")
    single = "text" in payload
    if single == ("texts" in payload):
        raise _RequestError(422, f"send {shape}")
    key, pair_key = ("text", "text_pair") if single else ("texts", "text_pairs")
    other = "text_pairs" if single else "text_pair"
    if other in payload:
        raise _RequestError(422, f"'{other}' goes with '{'texts' if single else 'text'}'; with '{key}' send "
                                 f"'{pair_key}'")
    texts = _strings(payload[key], key, single, max_batch)
    pairs = None
    if pair_key in payload:
        if text_pair is False:
            raise _RequestError(422, "this model classifies single texts (it was not trained on sentence pairs); "
                                     f"leave '{pair_key}' out")
        pairs = _strings(payload[pair_key], pair_key, single, max_batch)
        if len(pairs) != len(texts):
            raise _RequestError(422, f"'text_pairs' holds {len(pairs)} texts for {len(texts)} texts; send one "
                                     "second sentence per text")
    elif text_pair:
        raise _RequestError(422, f"this model classifies sentence pairs; send {shape}")
    return texts, pairs, single


def _strings(value: Any, key: str, single: bool, max_batch: int) -> list[str]:
    """The string (single) or list of strings in field ``key``; none of them empty."""
    if single:
        if not isinstance(value, str):
            raise _RequestError(422, f"'{key}' must be a string, not {_json_type(value)}")
        if is_blank(value):
            raise _RequestError(422, f"'{key}' {EMPTY_TEXT}")
        return [value]
    if not isinstance(value, list):
        raise _RequestError(422, f"'{key}' must be a list of strings, not {_json_type(value)}")
    if not value:
        raise _RequestError(422, f"'{key}' is empty; send at least one text")
    if len(value) > max_batch:
        raise _RequestError(422, f"'{key}' holds {len(value)} texts; the limit is {max_batch} per request")
    for i, t in enumerate(value):
        if not isinstance(t, str):
            raise _RequestError(422, f"{key}[{i}] must be a string, not {_json_type(t)}")
        if is_blank(t):
            raise _RequestError(422, f"{key}[{i}] {EMPTY_TEXT}")
    return value


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "a number",
             float: "a number", type(None): "null"}
    return names.get(type(value), type(value).__name__)


class _Batcher:
    """Runs ``classifier.predict`` for queued requests, one call at a time, taking every waiting
    request (up to ``max_batch`` texts) into each call. Created per app; asyncio only."""

    def __init__(self, classifier, max_batch: int):
        self.classifier = classifier
        self.max_batch = max_batch
        self.pending: list[tuple[list[str], list[str] | None, Any]] = []  # (texts, pairs, future of their predictions)
        self.running = False
        self.stats = {"requests": 0, "texts": 0, "model_calls": 0}  # since start, for GET /health

    async def predict(self, texts: list[str], pairs: list[str] | None = None) -> list:
        import asyncio

        future = asyncio.get_running_loop().create_future()
        self.pending.append((texts, pairs, future))
        if not self.running:
            self.running = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        import anyio

        try:
            while self.pending:
                taken, size = [], 0
                paired = self.pending[0][1] is not None  # one call holds pairs or single texts, not both
                while self.pending and (not taken or size + len(self.pending[0][0]) <= self.max_batch) \
                        and (self.pending[0][1] is not None) == paired:
                    texts, pairs, future = self.pending.pop(0)
                    taken.append((texts, pairs, future))
                    size += len(texts)
                batch = [t for texts, _, _ in taken for t in texts]
                args = (batch, [p for _, pairs, _ in taken for p in pairs]) if paired else (batch,)
                self.stats["requests"] += len(taken)
                self.stats["texts"] += len(batch)
                self.stats["model_calls"] += 1
                try:
                    preds = await anyio.to_thread.run_sync(self.classifier.predict, *args)
                except Exception as exc:  # every request of the call gets the failure
                    for _, _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for texts, _, future in taken:
                    if not future.done():  # done: the client went away
                        future.set_result(preds[start:start + len(texts)])
                    start += len(texts)
        finally:
            self.running = False


def create_app(classifier, *, max_batch: int = DEFAULT_MAX_BATCH, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES):
    """The Starlette application serving ``classifier`` (see the module doc for the API)."""
    _import_starlette()
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    for name, value in (("max_batch", max_batch), ("max_body_bytes", max_body_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise EdgebertError(f"{name} must be a positive integer, got {value!r}")
    batcher = _Batcher(classifier, max_batch)

    async def predict(request):
        try:
            texts, pairs, single = _parse(await _read_body(request, max_body_bytes), max_batch,
                                          getattr(classifier, "text_pair", None))
        except _RequestError as exc:
            return _error(exc.status, exc.message)
        try:
            preds = await batcher.predict(texts, pairs)
        except EdgebertError as exc:  # e.g. InferenceError: the model failed on this input
            log.error("prediction failed: %s", exc)
            return _error(500, f"prediction failed: {exc}")
        if single:
            return JSONResponse({"prediction": preds[0].to_dict()})
        return JSONResponse({"predictions": [p.to_dict() for p in preds]})

    async def health(request):
        info = {k: v for k, v in classifier.info().items() if k not in ("artifact", "model")}
        return JSONResponse({"status": "ok", **info, "max_batch": max_batch, "max_body_bytes": max_body_bytes,
                             "served": dict(batcher.stats)})

    async def labels(request):
        return JSONResponse({"labels": list(classifier.labels), "unknown_label": classifier.unknown_label,
                             "threshold": classifier.threshold})

    async def http_error(request, exc):
        detail = exc.detail if isinstance(exc.detail, str) else "error"
        if exc.status_code == 404:
            detail = f"no endpoint {request.url.path}; endpoints: POST /predict, GET /health, GET /labels"
        elif exc.status_code == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return _error(exc.status_code, detail)

    async def server_error(request, exc):
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, f"internal error: {type(exc).__name__}")

    routes = [Route("/predict", predict, methods=["POST"]), Route("/health", health, methods=["GET"]),
              Route("/labels", labels, methods=["GET"])]
    return Starlette(routes=routes, exception_handlers={HTTPException: http_error, Exception: server_error})


def serve(app, *, host: str = "127.0.0.1", port: int = 8080, log_level: str = "info") -> None:
    """Run ``app`` (from :func:`create_app`) with uvicorn until interrupted (Ctrl-C / SIGTERM)."""
    try:
        import uvicorn
    except ImportError:
        raise MissingDependencyError("uvicorn", purpose="edgebert serve") from None
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=log_level == "debug",
                timeout_keep_alive=5)
