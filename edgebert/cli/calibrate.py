"""edgebert calibrate."""

from __future__ import annotations

import click

from edgebert.cli.options import data_options, pop_data_options
from edgebert.cli.runtime_options import ARTIFACT_HELP


def _data_required(fn):
    """data_options without the advertised default for --data: calibration needs the model's own
    data (the command refuses to run without --data)."""
    for param in getattr(fn, "__click_params__", []):
        if param.name == "data":
            param.show_default = False
            param.help = (param.help or "") + " Required: labelled data with the model's labels."
    return fn


@click.command("calibrate", epilog=ARTIFACT_HELP)
@click.argument("artifact")
@_data_required
@data_options
@click.option("--precision", type=click.FloatRange(0.0, 1.0, min_open=True), default=0.95, show_default=True,
              help="Target accuracy on the inputs the model answers; the threshold that reaches it while "
                   "answering the most dev inputs is chosen.")
@click.option("--oos-recall", type=click.FloatRange(0.0, 1.0, min_open=True), default=None,
              help="Instead of --precision: with --oos-data (a model trained with the out-of-scope class), choose the "
                   "lowest threshold that answers this share of the dev out-of-scope texts as out of scope; below "
                   "it the model answers the out-of-scope label.")
@click.option("--split", default="dev", show_default=True,
              help="Split the threshold is chosen on (a dataset without dev gets a stratified 10% of train).")
@click.option("--eval-split", default="test", show_default=True,
              help="Held-out split on which the chosen threshold is checked ('none' to skip; skipped when "
                   "the dataset has no such split).")
@click.option("--write", is_flag=True,
              help="Store the threshold in ARTIFACT/manifest.json (deploy.threshold), where predict and "
                   "serve read it.")
@click.option("--out", type=click.Path(dir_okay=False), default=None,
              help="Write the full result (threshold, coverage, accuracies, curve) as JSON here.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="Intra-op threads of the model.")
@click.pass_context
def command(ctx, artifact, data, precision, oos_recall, split, eval_split, write, out, as_json, threads, **kwargs):
    """Choose the confidence threshold below which the model answers 'unknown'.

    Scores the --split texts, then picks the lowest threshold whose answered inputs reach
    --precision accuracy: the threshold that abstains least at that precision. Reports its
    coverage (share of inputs answered) and answered accuracy on that split and on --eval-split.

    \b
    Example:
      edgebert calibrate runs/compress/minilm-cpu --data intents --precision 0.95 --write
    """
    import json

    from edgebert.artifact import check_writable, write_json
    from edgebert.data import load_dataset
    from edgebert.errors import ConfigError, MissingDependencyError
    from edgebert.cli.runtime_options import load_classifier
    from edgebert.manifest import MANIFEST_NAME, Manifest, read_manifest
    from edgebert.runtime.calibration import calibrate, dataset_rows, label_indices, selective_metrics

    if ctx.get_parameter_source("data") != click.core.ParameterSource.COMMANDLINE:
        raise click.UsageError("Give the labelled data to calibrate on with --data "
                               "(e.g. --data ../shared/data/banking77).")
    try:
        ds = load_dataset(data, **pop_data_options(kwargs))
    except ModuleNotFoundError as exc:  # scikit-learn splits off a dev set; not in the runtime install
        package = {"sklearn": "scikit-learn"}.get(exc.name or "sklearn", exc.name)
        raise MissingDependencyError(package, purpose="carving a dev split from train, as the data has none; "
                                     "or pass --dev FILE") from None
    clf = load_classifier(artifact, threads=threads, threshold=0.0)
    if out:
        check_writable(out, replaced=True)
    if write:
        manifest_path = clf.layout.root / MANIFEST_NAME
        check_writable(manifest_path, replaced=True, hint=(
            f"Copy the artifact to a folder you can write to (cp -r {clf.layout.root} COPY) and calibrate the "
            "copy, or drop --write."))
        # read before scoring: a manifest that cannot be written back is reported before any work
        manifest = read_manifest(manifest_path) if manifest_path.is_file() else Manifest.new()
    else:
        manifest_path = manifest = None
    if oos_recall is not None:
        return _calibrate_out_of_scope(ctx, clf, ds, artifact, data, oos_recall, split, eval_split, write, out,
                                       as_json, manifest_path, manifest)
    texts, pairs, labels = dataset_rows(ds, split)
    result = calibrate(clf, texts, labels, precision=precision, text_pairs=pairs)
    report = {"command": _command(ctx), "artifact": artifact, "data": data, "split": split, **result.to_dict(),
              "eval": None}
    if eval_split.lower() != "none" and eval_split in ds.splits:
        eval_texts, eval_pairs, eval_labels = dataset_rows(ds, eval_split)
        probs = clf.predict_proba(eval_texts, eval_pairs)
        y = label_indices(eval_labels, clf.labels)
        report["eval"] = {"split": eval_split, "n": len(y), **selective_metrics(probs, y, result.threshold),
                          "accuracy": selective_metrics(probs, y, None)["answered_accuracy"]}
    if out:
        write_json(out, report)
    if write and result.reached:
        _write_threshold(manifest_path, manifest, result.threshold, report)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        _print(report)
    if not result.reached:
        raise ConfigError(
            f"No threshold reaches precision {precision} on {split}: the best accuracy on answered inputs is "
            f"{result.best_accuracy:.4f}. Lower --precision" + (" (nothing was written)." if write else ".")
        )
    if write:
        click.echo(f"Threshold written to {clf.layout.root / 'manifest.json'} (deploy.threshold).")


def _calibrate_out_of_scope(ctx, clf, ds, artifact, data, recall, split, eval_split, write, out, as_json,
                            manifest_path, manifest) -> None:
    """--oos-recall: the threshold for a target out-of-scope recall on --split, checked on --eval-split."""
    import json

    from edgebert.artifact import write_json
    from edgebert.errors import ConfigError
    from edgebert.runtime.calibration import dataset_rows, label_indices, out_of_scope_at, out_of_scope_threshold

    oos = ds.out_of_scope_label
    if oos is None:
        raise ConfigError("--oos-recall needs the out-of-scope texts: add --oos-data FILE (the texts the model was "
                          "trained with as its out-of-scope class come from the same kind of file)")
    if oos not in clf.labels:
        raise ConfigError(f"the model has no {oos!r} label, so it was not trained with out-of-scope texts: fine-tune or "
                          f"compress it with --oos-data FILE (or name its class with --oos-label)")
    index = list(clf.labels).index(oos)

    def scores(split_name: str):
        texts, pairs, labels = dataset_rows(ds, split_name)
        return label_indices(labels, clf.labels), clf.predict_proba(texts, pairs)

    y, probs = scores(split)
    found = out_of_scope_threshold(probs, y, index, recall=recall)
    report = {"command": _command(ctx), "artifact": artifact, "data": data, "split": split, "out_of_scope_label": oos,
              **found, "eval": None}
    if found["threshold"] is not None and eval_split.lower() != "none" and eval_split in ds.splits:
        ey, eprobs = scores(eval_split)
        report["eval"] = {"split": eval_split,
                          "at_threshold": out_of_scope_at(eprobs, ey, index, found["threshold"]),
                          "without": out_of_scope_at(eprobs, ey, index, None)}
    if out:
        write_json(out, report)
    if as_json:
        click.echo(json.dumps(report, indent=2))
    else:
        for name, where in ((split, report), (eval_split, report["eval"])):
            if where and where.get("at_threshold"):
                a, w = where["at_threshold"], where["without"]
                click.echo(f"{name}: out-of-scope recall {_acc(w['out_of_scope_recall'])} -> "
                           f"{_acc(a['out_of_scope_recall'])}, in-scope accuracy {_acc(w['in_scope_accuracy'])} -> "
                           f"{_acc(a['in_scope_accuracy'])}")
    if found["threshold"] is None:
        raise ConfigError(f"No threshold reaches out-of-scope recall {recall} on {split}"
                          + (" (nothing was written)." if write else "."))
    click.echo(f"Threshold {found['threshold']:.4f} for out-of-scope recall >= {recall} on {split}.")
    if write:
        _write_threshold(manifest_path, manifest, found["threshold"], report, unknown_label=oos)
        click.echo(f"Threshold written to {clf.layout.root / 'manifest.json'} (deploy.threshold; below it the model "
                   f"answers {oos!r}).")


def _command(ctx) -> str:
    """The command line that produced a report, rebuilt from the options given (for the record)."""
    import shlex

    parts = ["edgebert", ctx.info_name, ctx.params["artifact"]]
    for name, value in ctx.params.items():
        if name == "artifact" or value in (None, False) or \
                ctx.get_parameter_source(name) != click.core.ParameterSource.COMMANDLINE:
            continue
        flag = "--" + name.replace("_", "-").replace("as-json", "json")
        parts += [flag] if value is True else [flag, str(value)]
    return shlex.join(parts)


def _write_threshold(path, manifest, threshold: float, report: dict, unknown_label: str | None = None) -> None:
    """Set deploy.threshold (and with ``unknown_label``, the answer below it) in ``manifest`` (read from
    ``path``, or new where the folder has none) and write it to ``path``, atomically."""
    from edgebert.artifact import now_iso
    from edgebert.manifest import Deploy, write_manifest

    if manifest.deploy is None:
        manifest.deploy = Deploy()
    manifest.deploy.threshold = threshold
    if unknown_label is not None:
        manifest.deploy.unknown_label = unknown_label
    keys = ("data", "split", "target_precision", "threshold", "coverage", "answered_accuracy", "n", "eval",
            "target_recall", "out_of_scope_label", "at_threshold", "without")
    manifest.calibration = {k: report[k] for k in keys if k in report}
    manifest.calibration["time"] = now_iso()
    write_manifest(path, manifest)


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def _acc(x) -> str:
    return "-" if x is None else f"{x:.4f}"


def _print(r: dict) -> None:
    click.echo(f"{r['split']} (n={r['n']}): accuracy answering everything {r['accuracy']:.4f}")
    click.echo(f"{'threshold':>9}  {'answered':>8}  accuracy on answered")
    for point in r["curve"]:
        click.echo(f"{point['threshold']:>9.2f}  {_pct(point['coverage']):>8}  {_acc(point['answered_accuracy'])}")
    if r["threshold"] is None:
        return
    click.echo(f"Threshold {r['threshold']:.4f} for precision >= {r['target_precision']}: answers "
               f"{_pct(r['coverage'])} of {r['split']} ({r['answered']} of {r['n']}), accuracy on answered "
               f"{_acc(r['answered_accuracy'])}")
    e = r["eval"]
    if e:
        click.echo(f"On {e['split']} (n={e['n']}): answers {_pct(e['coverage'])}, accuracy on answered "
                   f"{_acc(e['answered_accuracy'])} (answering everything: {_acc(e['accuracy'])})")
