"""Options shared by the runtime commands (predict, serve, calibrate): how the artifact is loaded.

Not a command module. Nothing here imports torch or transformers: these commands run on a
runtime-only install (``pip install edgebert``, the base package without the ``train`` extra).
"""

from __future__ import annotations

import click

ARTIFACT_HELP = ("ARTIFACT is a folder written by 'edgebert compress' (manifest.json, model/, tokenizer/, "
                 "labels.json) or a model file (.onnx, .ort, .pt, .plan) with its tokenizer and labels beside it.")


def classifier_options(fn):
    """--threads, --threshold, --max-length, --batch-size."""
    decorators = [
        click.option("--threads", type=click.IntRange(min=1), default=None,
                     help="Intra-op threads of the model [default: onnxruntime's choice, one per core]."),
        click.option("--threshold", type=click.FloatRange(0.0, 1.0), default=None,
                     help="Answer the unknown label when the top probability is below this [default: the "
                          "manifest's deploy.threshold, else answer everything]. 0 answers everything."),
        click.option("--max-length", type=click.IntRange(min=2), default=None,
                     help="Token cap per text; longer texts are truncated [default: the manifest's "
                          "deploy.max_length, else 128]."),
        click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True,
                     help="Texts per model call (texts are sorted by length, so batches carry little padding)."),
    ]
    for d in reversed(decorators):
        fn = d(fn)
    return fn


def load_classifier(artifact: str, *, threads=None, threshold=None, max_length=None, batch_size=32):
    """``Classifier.load`` with the options above; a provider fallback is printed as a warning line."""
    import warnings

    from edgebert.runtime import Classifier
    from edgebert.runtime.classifier import ProviderFallbackWarning

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ProviderFallbackWarning)
        clf = Classifier.load(artifact, threads=threads, threshold=threshold, max_length=max_length,
                              batch_size=batch_size)
    for w in caught:
        if issubclass(w.category, ProviderFallbackWarning):
            click.secho(f"Warning: {w.message}.", fg="yellow", err=True)
        else:  # not ours to reword: shown as Python shows it
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return clf
