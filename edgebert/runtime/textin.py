"""Text-in models: ONNX graphs that tokenize inside, so an app passes strings and gets logits back.

Such a graph (written by :func:`edgebert.export.textin.make_text_in`) takes one input, ``text``: a
1-D string tensor (one text per row), and returns the classifier's logits (batch, labels). Its
tokenizer runs as operators of ONNX Runtime Extensions (domain ``ai.onnx.contrib``), which
onnxruntime loads from the ``onnxruntime-extensions`` package's library
(``onnxruntime_extensions.get_library_path()``); nothing else is needed: no tokenizer.json, no
``tokenizers``. The token cap (max_length) is part of the graph and read from its metadata.

Public interface (used by :mod:`edgebert.runtime.classifier`)::

    session = open_session(path, options, providers)   # registers the library when the graph needs it
    is_text_in(session)                                 # True: feed strings
    text_feeds(["a text", "another"])                   # {"text": array of str objects}
    graph_max_length(session)                           # the token cap written in the graph (or None)
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from edgebert.errors import DataError, MissingDependencyError

__all__ = ["CONTRIB_DOMAIN", "META_KIND", "META_MAX_LENGTH", "TEXT_INPUT", "extensions_library", "graph_max_length",
           "is_text_in", "open_session", "string_batches", "text_feeds"]

#: the graph input of a text-in model: a 1-D tensor of UTF-8 strings, one text per row
TEXT_INPUT = "text"
#: operator domain of onnxruntime-extensions' custom operators
CONTRIB_DOMAIN = "ai.onnx.contrib"
#: model metadata keys written by make_text_in: the tokenizer kind and the token cap of the graph
META_KIND = "edgebert.text_in"
META_MAX_LENGTH = "edgebert.max_length"


def extensions_library() -> str:
    """Path of the onnxruntime-extensions custom-operator library (MissingDependencyError without it).

    It is the file ``onnxruntime_extensions.get_library_path()`` returns (the package's
    ``_extensions_pydll`` extension module), found without importing the package: its ``__init__``
    imports onnx, transformers and torch where they are installed (its model converters), which
    took most of a text-in model's cold start and memory (about 40 s and 400 MB on a 2-core
    machine) in ``predict`` / ``serve``.
    """
    import importlib.machinery
    import importlib.util

    try:
        spec = importlib.util.find_spec("onnxruntime_extensions")
    except ValueError:  # sys.modules holds None for it: its import is blocked
        spec = None
    if spec is None:
        raise MissingDependencyError("onnxruntime-extensions", extra="textin",
                                     purpose="text-in models, which tokenize inside the graph")
    for folder in spec.submodule_search_locations or ():
        for suffix in importlib.machinery.EXTENSION_SUFFIXES:
            path = Path(folder) / f"_extensions_pydll{suffix}"
            if path.is_file():
                return str(path)
    from onnxruntime_extensions import get_library_path  # another layout: ask the package

    return get_library_path()


def _needs_extensions(exc: BaseException) -> bool:
    """Whether onnxruntime refused a graph because an operator of the extensions domain is unknown."""
    return CONTRIB_DOMAIN in str(exc)


def open_session(path: str | os.PathLike, options, providers: Sequence[str]):
    """``onnxruntime.InferenceSession`` of ``path``; a graph with onnxruntime-extensions operators is
    opened with that library registered in ``options``.

    The library is registered only for the graphs that need it (found from onnxruntime's refusal of
    the first attempt, which needs neither the onnx package nor a second parse of a token-in graph):
    token-in models load exactly as before, and need the package no more than before.
    """
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), options, providers=list(providers))
    except Exception as exc:  # onnxruntime raises its own pybind exception types
        if not _needs_extensions(exc):
            raise
    options.register_custom_ops_library(extensions_library())
    return ort.InferenceSession(str(path), options, providers=list(providers))


def is_text_in(session) -> bool:
    """True for a session whose model takes strings (the ``text`` input) rather than token ids."""
    return any(i.type == "tensor(string)" for i in session.get_inputs())


def graph_max_length(session) -> int | None:
    """The token cap written into a text-in graph by make_text_in (None when absent)."""
    value = session.get_modelmeta().custom_metadata_map.get(META_MAX_LENGTH)
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def text_feeds(texts: Sequence[str]) -> dict[str, Any]:
    """The feeds of a text-in graph for ``texts``: (batch,) strings."""
    return {TEXT_INPUT: np.array(list(texts), dtype=object)}


def string_batches(texts: Sequence[str], pairs: Sequence[str] | None, batch_size: int
                   ) -> tuple[list[tuple[dict[str, Any], int]], np.ndarray]:
    """(feeds, texts in them) per batch of at most ``batch_size`` texts, and the order of the texts in
    them: sorted by length in characters, so that the graph pads each batch to little more than its
    longest text (as the token-in path sorts by token count)."""
    if pairs is not None:
        raise DataError("A text-in model classifies single texts (its in-graph tokenizer takes no sentence "
                        "pairs): leave text_pairs out, or use the artifact's token-in model.")
    lengths = np.fromiter((len(t) for t in texts), dtype=np.int64, count=len(texts))
    order = np.argsort(lengths, kind="stable")
    batches = []
    for start in range(0, len(order), batch_size):
        rows = [texts[i] for i in order[start:start + batch_size]]
        batches.append((text_feeds(rows), len(rows)))
    return batches, order
