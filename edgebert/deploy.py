"""Assemble the deployable part of an artifact folder and report on it.

After the last stage, :func:`assemble` writes ``model/`` (the deployable files, linked from their stage
folders), ``tokenizer/``, ``labels.json`` and the manifest's ``deploy`` block (how the runtime runs the
model, at the precision read from the file itself), then scores each shipped file on dev as the device
runs it (``deployed_scores``) and sums the run up against the target's budgets (``summary``).
:func:`report_markdown` renders the stage table written as ``report.md``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgebert.errors import ConfigError, ModelLoadError
from edgebert.formats import DEPLOYABLE_SUFFIXES, format_of, onnx_precision, safetensors_precision
from edgebert.manifest import Deploy, Manifest, Summary, deploy_block, engine_precision, first, write_manifest


def assemble(root: Path, art, manifest: Manifest, target, previous: Manifest | None, dataset) -> None:
    """model/ (deployable files), tokenizer/, labels.json and the manifest's deploy + summary, for the
    stages' final state ``art`` (the stage registry's Artifact) and ``target`` (TargetProfile)."""
    from edgebert.cache import link_or_copy
    from edgebert import models
    from edgebert.artifact import staged_dir, write_json
    from edgebert.stages.registry import model_ref as _ref

    if not art.deploy:
        raise ConfigError("The recipe produced no deployable file.")
    with staged_dir(root / "model") as stage:
        for name, rel in art.deploy.items():
            link_or_copy(art.path(rel), stage / name)
            data = art.path(rel).with_name(art.path(rel).name + ".data")
            if name.endswith(".onnx") and data.is_file():  # external weights of a large model
                link_or_copy(data, stage / (name + ".data"))
    ref = _ref(art, art.model)
    with staged_dir(root / "tokenizer") as stage:
        models.load_tokenizer(ref).save_pretrained(stage)
        if (stage / "tokenizer.json").is_file() and not (stage / "vocab.txt").is_file():
            from edgebert.runtime.wordpiece import write_vocab_txt

            try:  # apps tokenize from vocab.txt (docs/tokenization.md)
                write_vocab_txt(stage)
            except ModelLoadError:  # not WordPiece (ALBERT's SentencePiece): apps use its own files
                pass
    labels = models.model_labels(models.load_config(ref))
    write_json(root / "labels.json", {"labels": labels})

    primary = art.primary or next(iter(art.deploy))
    fmt = format_of(primary)
    old_deploy = deploy_block(previous) if previous is not None else {}
    deploy = {
        # runtime and precision of the file named in "model" (what runs it, at what precision, here and now);
        # the target's own in target_runtime / target_precision (they differ where a TensorRT engine is deferred)
        "runtime": fmt.runtime if fmt else target.runtime,
        "precision": _file_precision(root / "model", primary, art, manifest),
        "target_runtime": target.runtime,
        # an engine's precision is build-tensorrt's (jetson-int8 builds int8 for an fp16 target)
        "target_precision": engine_precision(manifest) or target.precision,
        "fallback_runtime": target.fallback_runtime, "format": fmt.name if fmt else "unknown",
        "model": f"model/{primary}", "files": sorted(f"model/{n}" for n in art.deploy),
        "tokenizer": "tokenizer/", "labels": "labels.json",
        "providers": target.providers, "threads": target.threads, "max_length": target.shapes.max_length,
        "model_max_length": models.max_tokens(models.load_config(ref)),  # what --max-length may go up to
        "input_names": _input_names(root / "model", primary),
        "text_pair": dataset.text_pair_column is not None,  # a sentence-pair model: the runtime asks for the second sentence
        "threshold": old_deploy.get("threshold"), "unknown_label": old_deploy.get("unknown_label", "unknown"),
    }
    if "build_engine.sh" in art.deploy and "model.plan" not in art.deploy:
        deploy["engine"] = "not built here: run model/build_engine.sh on the device to write model/model.plan"
    if "model.safetensors" in art.deploy and primary != "model.safetensors":
        deploy["fallback"] = {"runtime": "pytorch", "model": "model/model.safetensors",
                              "precision": _file_precision(root / "model", "model.safetensors", art, manifest)}
    manifest.deploy = Deploy.model_validate(deploy)
    write_manifest(root / "manifest.json", manifest)  # the runtime scores the artifact as it loads it: by its deploy block
    manifest.deployed_scores = score_deployed(root, deploy, dataset)
    manifest.summary = Summary.model_validate(summarize(manifest.to_dict(), root / "model" / primary))


def score_deployed(root: Path, deploy: dict[str, Any], dataset) -> list[dict[str, Any]]:
    """Dev accuracy of each file that ships, run as the device runs it: the deployed model through the
    torch-free runtime (ONNX, .ort, TorchScript; a TensorRT engine where TensorRT is present), and a
    PyTorch checkpoint (the primary or the fallback) at its own precision. Stage figures come from
    intermediate files; these are the shipped files' own."""
    import numpy as np


    dev = dataset.split("dev")
    scores = []
    files = [(deploy["model"], deploy["runtime"], deploy["precision"])]
    if deploy.get("fallback"):
        fb = deploy["fallback"]
        files.append((fb["model"], fb["runtime"], fb["precision"]))
    for rel, runtime, precision in files:
        path = root / rel
        if path.suffix == ".safetensors":
            logits, labels = _torch_logits(path.parent, precision, dev, deploy["max_length"])
        elif path.suffix == ".plan" and not _tensorrt_present():
            continue  # built on the device; validated there by build_engine.sh
        elif path.suffix.lower() not in DEPLOYABLE_SUFFIXES:
            continue  # a torch.export file runs in PyTorch only; its export stage validated it
        else:
            from edgebert.runtime import Classifier

            # one text per call, as a device answering requests runs it (dynamic int8's activation scales
            # come from the whole call, so batching would change the answers)
            clf = Classifier.load(root if rel == deploy["model"] else path, threshold=0, batch_size=1,
                                  max_length=deploy["max_length"])
            logits, labels = clf.logits(dev.texts, text_pairs=dev.text_pairs), list(clf.labels)
        index = {name: i for i, name in enumerate(labels)}
        gold = np.array([index[dataset.label_names[y]] for y in dev.labels])
        scores.append({"file": rel, "runtime": runtime, "precision": precision, "n": len(dev),
                       "dev_accuracy": float((np.asarray(logits).argmax(-1) == gold).mean())})
    return scores


def _torch_logits(folder: Path, precision: str, dev, max_length: int):
    """Logits of a saved PyTorch classifier at its saved precision (from_pretrained loads float32)."""
    import torch

    from edgebert import models
    from edgebert.evaluation import predict_logits

    loaded = models.load(folder)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(precision)
    model = loaded.model.to(dtype) if dtype is not None else loaded.model
    return predict_logits(model, loaded.tokenizer, dev, max_length=max_length), loaded.label_names


def _tensorrt_present() -> bool:
    import importlib.util

    return importlib.util.find_spec("tensorrt") is not None


def _file_precision(model_dir: Path, name: str, art, manifest: Manifest | dict[str, Any]) -> str:
    """fp32 / fp16 / int8 / mixed of a deployed file, read from the file (not assumed from the target)."""
    path = model_dir / name
    if path.suffix == ".onnx":
        return onnx_precision(path)
    if path.suffix == ".ort":  # converted from the recipe's last ONNX model, same precision
        return onnx_precision(art.path(art.onnx)) if art.onnx else "unknown"
    if path.suffix == ".safetensors":
        return safetensors_precision(path)
    if path.suffix == ".plan":
        return engine_precision(manifest) or "unknown"
    # TorchScript / torch.export files are written from the fp32 model, or its torch int8 dynamic quantization
    return "int8" if getattr(art, "torch_quantization", None) else "fp32"


def _input_names(model_dir: Path, primary: str) -> list[str] | None:
    """The graph inputs an app feeds (ONNX / ORT models), in order."""
    path = model_dir / primary
    if path.suffix == ".onnx":
        import onnx

        return [i.name for i in onnx.load(str(path), load_external_data=False).graph.input]
    if path.suffix == ".ort":  # opened as the runtime opens it (a text-in model needs its operator library)
        from edgebert.runtime.backends import OnnxBackend

        return OnnxBackend.load(path, threads=None, providers=None).input_names
    onnx_file = model_dir / "model.onnx"
    return _input_names(model_dir, "model.onnx") if onnx_file.is_file() else None


def accuracy_budget_left(stages: list[dict[str, Any]], target) -> float | None:
    """Points of dev accuracy the target's budget still allows after the finished ``stages`` (None: unknown)."""
    teacher, current = accuracy_so_far(stages)
    if teacher is None or current is None:
        return None
    return float(target.budgets.accuracy_drop) - 100.0 * (teacher - current)


def accuracy_so_far(stages: list[dict[str, Any]]) -> tuple[Any, Any]:
    """(fine-tuned model's dev accuracy, the latest dev accuracy) recorded by finished stage records."""
    teacher = first(stages, "metrics.teacher_dev_accuracy", "metrics.dev.accuracy", "validation.accuracy_before")
    return teacher, first(list(reversed(stages)), "metrics.dev_accuracy")


def summarize(manifest: dict[str, Any], primary: Path) -> dict[str, Any]:
    """Teacher vs final dev accuracy, the drop against the budget, the deployed size against its budget.

    The final accuracy is the deployed file's own (``deployed_scores``) where it could be run here, else
    the last stage's; ``final_dev_accuracy_file`` says which file it belongs to. Latency and memory
    budgets are the device's to check: ``edgebert bench`` on the device compares the artifact's
    measured p50 and peak memory with them.
    """
    from edgebert.export.fuse import model_file_bytes

    stages = manifest["stages"]
    teacher, final = accuracy_so_far(stages)
    shipped = (manifest.get("deploy") or {}).get("model")
    deployed = next((s for s in manifest.get("deployed_scores") or [] if s["file"] == shipped), None)
    final_file = "the last stage's dev scoring (the deployed file cannot run here)"
    if deployed is not None:
        final, final_file = deployed["dev_accuracy"], deployed["file"]
    budgets = manifest["target"]["budgets"]
    budget = budgets["accuracy_drop"]
    size = model_file_bytes(primary) if primary.exists() else None
    drop = None if teacher is None or final is None else 100.0 * (teacher - final)
    size_budget = budgets.get("size_mb")
    return {"teacher_dev_accuracy": teacher, "teacher_dev_accuracy_file": _teacher_file(stages),
            "final_dev_accuracy": final, "final_dev_accuracy_file": final_file, "accuracy_drop_points": drop,
            "accuracy_budget_points": budget, "within_accuracy_budget": None if drop is None else drop <= budget,
            "model_bytes": size, "size_budget_mib": size_budget,
            "within_size_budget": None if size is None or size_budget is None else size <= size_budget * 2**20,
            "seconds": round(sum(s.get("seconds", 0) for s in stages), 1)}


def _teacher_file(stages: list[dict[str, Any]]) -> str | None:
    """The fine-tuned model the teacher accuracy was measured on (the input model when it had a head)."""
    return first(stages, "state.teacher")


def budget_warnings(manifest: dict[str, Any]) -> list[str]:
    """One sentence per budget of the target the artifact does not meet (empty: all met or unknown)."""
    s = manifest.get("summary") or {}
    out = []
    if s.get("within_accuracy_budget") is False:
        out.append(f"dev accuracy dropped {s['accuracy_drop_points']:.2f} points from the fine-tuned model "
                   f"({s['teacher_dev_accuracy']:.4f} -> {s['final_dev_accuracy']:.4f}), over the target's budget of "
                   f"{s['accuracy_budget_points']} points")
    if s.get("within_size_budget") is False:
        out.append(f"the deployed model is {s['model_bytes'] / 2**20:.1f} MiB, over the target's size budget of "
                   f"{s['size_budget_mib']} MiB")
    return out


def report_markdown(manifest: dict[str, Any]) -> str:
    """The stage table of an artifact (also written as report.md)."""
    s = manifest["summary"]
    lines = [f"# {manifest['run']['model']} for target {manifest['run']['target']}", "",
             f"Recipe `{manifest['run']['recipe']}`, data {manifest['run']['data']['name']}, "
             f"seed {manifest['run']['seed']}. Deploy: `{manifest['deploy']['model']}` "
             f"({manifest['deploy']['runtime']}, {manifest['deploy']['precision']}){_target_note(manifest['deploy'])}.",
             "",
             "| # | stage | seconds | dev accuracy | agreement with input | max logit diff | size MiB |",
             "|---|---|---|---|---|---|---|"]
    for rec in manifest["stages"]:
        m, v = rec.get("metrics") or {}, rec.get("validation") or {}
        acc = m.get("dev_accuracy", (m.get("dev") or {}).get("accuracy"))
        cells = [str(rec["index"]), rec["kind"] + (" (skipped)" if rec.get("skipped") else ""),
                 f"{rec['seconds']:.1f}", _fmt(acc, ".4f"), _fmt(v.get("label_agreement"), ".3f"),
                 _fmt(v.get("max_abs_logit_diff"), ".2e"), _fmt(m.get("bytes") and m["bytes"] / 2**20, ".1f")]
        lines.append("| " + " | ".join(cells) + " |")
    size_mib = s["model_bytes"] and s["model_bytes"] / 2**20
    lines += ["", f"Teacher dev accuracy {_fmt(s['teacher_dev_accuracy'], '.4f')}"
                  + (f" (`{s['teacher_dev_accuracy_file']}`)" if s.get("teacher_dev_accuracy_file") else "")
                  + f", final {_fmt(s['final_dev_accuracy'], '.4f')}"
                  + (f" (`{s['final_dev_accuracy_file']}`)" if s.get("final_dev_accuracy_file") else "")
                  + f": drop {_fmt(s['accuracy_drop_points'], '.2f')} points "
                  f"(budget {s['accuracy_budget_points']}). Deployed file {_fmt(size_mib, '.1f')} MiB"
                  + (f" (budget {s['size_budget_mib']} MiB)." if s.get("size_budget_mib") else "."), ""]
    lines += [f"Over budget: {w}." for w in budget_warnings(manifest)]
    return "\n".join(lines)


def _target_note(deploy: dict[str, Any]) -> str:
    """Where the deployed file is not what the target runs (a deferred TensorRT engine), say so."""
    want = (deploy.get("target_runtime"), deploy.get("target_precision"))
    if None in want or want == (deploy.get("runtime"), deploy.get("precision")):
        return ""
    note = f"; the target runs {want[0]} {want[1]}"
    if deploy.get("engine"):
        note += " once model/build_engine.sh has built the engine on the device"
    if deploy.get("fallback"):
        fb = deploy["fallback"]
        note += f"; fallback `{fb['model']}` ({fb['runtime']}, {fb['precision']})"
    return note


def _fmt(value: Any, spec: str) -> str:
    return "-" if value is None else format(value, spec)
