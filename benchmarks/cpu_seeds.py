"""Is a `cpu` recipe's accuracy one lucky run? The same compression repeated with other seeds.

    python benchmarks/cpu_seeds.py --dataset sst2 --seeds 0 1 2
    python benchmarks/cpu_seeds.py --dataset sst2 --seeds 0 1 2 --recipe benchmarks/recipes/cpu-hidden.yaml

For each seed: `edgebert compress --model runs/models/minilm-<ds> --target cpu --data <ds> --seed S
[--recipe FILE]`, then `edgebert bench` of the fine-tuned model and the artifact on the test split for
accuracy and agreement (one short timing round; latency is the goals benchmark's job, cpu_goals.py,
and the pruned shapes are the same for every seed). Without --recipe it runs the cpu target's recipe:
seed 0 is the published goals run (cpu_goals.ARTIFACTS), which resumes without work, and seed S writes
runs/seeds/<ds>-s<S>. With --recipe FILE (a candidate, e.g. benchmarks/recipes/*.yaml) every seed, 0
included, writes runs/seeds/<recipe name>-<ds>-s<S>.

Writes runs/benchmarks/cpu-seeds-<ds>.{json,md} (--publish: benchmarks/results/) (with --recipe: cpu-seeds-<recipe name>-<ds>): per
seed the test accuracy, the drop from the fine-tuned fp32 model in points (goal: at most 1.0),
agreement with it, the distilled epoch kept and its dev figures; then mean, sample standard
deviation, min and max over the seeds. Seeds already in the record are kept; a record of another
recipe file, of another text of the same file (its sha256; without --recipe that of the recipe the cpu
target names, recipes/cpu.yaml), of the old distillation shuffle, or whose rows were made with other
resolved settings than the recipe gets now (a default changed: distill's learning rates at commit
5f8f055) is refused (move it aside).

How independent the seeds are: run seed S adds S to each stage's seed, so prune's importance sample
and distillation's row order and text perturbations (seeded by distill.epoch_seed(stage seed, epoch))
are drawn afresh for every run. Records whose "shuffle" is "seed + epoch" were made before that:
distillation shuffled with stage seed + epoch, so run S's epoch e took the row order of run 0's
epoch e + S.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shlex
import statistics
import sys
from pathlib import Path

from edgebert.artifact import host_info
from cpu_goals import ARTIFACTS, DATA, ROOT, recipe_line, sh  # run as a script: benchmarks/ is on sys.path
from publish import add_publish_option, results_dir

GOAL_DROP = 1.0
SHUFFLE_NOTE = {
    "seed + epoch": "The run seed shifts every stage's seed: prune's importance sample and the text perturbations "
                    "differ between runs; these runs were made when distillation's row order was seeded by stage "
                    "seed + epoch, so a run's epoch e reused the order of run 0's epoch e + seed (over other "
                    "perturbed copies): different runs, not fully independent draws.",
    "epoch_seed": "The run seed shifts every stage's seed: prune's importance sample, distillation's row order "
                  "and its text perturbations (seeded by distill.epoch_seed(stage seed, epoch)) are drawn afresh "
                  "for every run.",
}
SHUFFLE_NOTE["seed * 1000 + epoch"] = SHUFFLE_NOTE["epoch_seed"]  # its first name (seed-0 runs only: the same)
CURRENT_SHUFFLE = ("epoch_seed", "seed * 1000 + epoch")  # the records new seeds may be added to


def target_recipe_file() -> Path:
    """The recipe file the cpu target names (recipes/cpu.yaml): its sha256 ties a record to its text."""
    from edgebert.targets import load_target, recipe_file

    name = load_target("cpu").recipe
    if not isinstance(name, str):
        sys.exit("the cpu target's recipe is written inline, not in a recipe file")
    return recipe_file(name)


def planned_recipe_line(recipe: Path | None, model_config) -> str:
    """The record's "Recipe:" line for the stages that ``recipe`` (None: the cpu target's) would run on
    the model with ``model_config``, defaults that depend on the model (distillation's learning rates)
    filled in as compress fills them."""
    from edgebert.pipeline import plan

    stages = plan("cpu", recipe).for_model(model_config).stages
    return recipe_line({"stages": [{"kind": s.kind, "config": s.model_dump(mode="json")} for s in stages]})


def stale_record(old: dict, planned: str) -> str | None:
    """Why new seeds may not join the record ``old`` although its recipe file is unchanged: its rows were
    made with other resolved settings (distill's default learning rates before commit 5f8f055), else None."""
    if old.get("rows") and old.get("recipe") and old["recipe"] != planned:
        return (f"its rows were made with '{old['recipe']}', the recipe now runs with '{planned}' (a default "
                "changed; the record reproduces at the commit it was made at)")
    return None


def seed_row(seed: int, model: Path, art: Path, bench: dict) -> dict:
    teacher = next(v for v in bench["variants"] if v["source"] == str(model))
    student = next(v for v in bench["variants"] if v["source"] == str(art))
    manifest = json.loads((art / "manifest.json").read_text())
    distill = next(s for s in manifest["stages"] if s["kind"] == "distill")
    report = distill["metrics"]["report"]
    best = next(h for h in report["history"] if h["epoch"] == report["best_epoch"])
    return {
        "seed": seed, "artifact": str(art.relative_to(ROOT)),
        "stage_seeds": {s["kind"]: s["config"]["seed"] for s in manifest["stages"]
                        if "seed" in s["config"] and not s.get("skipped")},
        "teacher_test_accuracy": teacher["accuracy"]["accuracy"],
        "test_accuracy": student["accuracy"]["accuracy"],
        "drop_points": 100.0 * (teacher["accuracy"]["accuracy"] - student["accuracy"]["accuracy"]),
        "test_agreement": student["accuracy"].get("agreement"),
        "n": student["accuracy"]["n"],
        "best_epoch": report["best_epoch"], "dev_accuracy": best["dev_accuracy"], "dev_agreement": best["dev_agreement"],
        "distill_seconds": distill["seconds"],
        "layer_map": report.get("layer_map"),
        # which fine-tuning run the teacher came from: runs/ is not kept, and re-making the teacher on
        # another host gives another model (float rounding), so rows can come from different teachers
        "teacher_sha256": manifest["run"].get("model_sha256"),
        "host": host_info()["processor"],
    }


def summary(rows: list[dict]) -> dict:
    def stats(key):
        vals = [r[key] for r in rows]
        return {"mean": statistics.fmean(vals), "sd": statistics.stdev(vals) if len(vals) > 1 else None,
                "min": min(vals), "max": max(vals)}

    return {"seeds": [r["seed"] for r in rows], "test_accuracy": stats("test_accuracy"),
            "drop_points": stats("drop_points"), "test_agreement": stats("test_agreement"),
            "goal_met": sum(r["drop_points"] <= GOAL_DROP for r in rows)}


def teacher_ids(rows: list[dict]) -> list[int]:
    """Which teacher each row was distilled from (0, 1, ... in order of appearance). Told apart by
    the teacher's sha256 where recorded; a row made before that was recorded counts as the teacher of
    equal test accuracy."""
    teachers: list[tuple[str | None, float]] = []
    ids = []
    for r in rows:
        sha, acc = r.get("teacher_sha256"), round(r["teacher_test_accuracy"], 6)
        same = [i for i, (s, a) in enumerate(teachers) if (s == sha if s and sha else a == acc)]
        if not same:
            teachers.append((sha, acc))
            same = [len(teachers) - 1]
        elif sha and not teachers[same[0]][0]:
            teachers[same[0]] = (sha, acc)
        ids.append(same[0])
    return ids


def markdown(record: dict) -> str:
    s = record["summary"]
    name = Path(record["recipe_file"]).stem if record.get("recipe_file") else "cpu"
    rows = record["rows"]
    ids = teacher_ids(rows)
    n_teachers = len(set(ids))
    lines = [f"# {name} recipe over seeds: MiniLM on {record['dataset']} (test split, n={rows[0]['n']})", "",
             f"Command: `{record['command']}`  ", f"Date: {record['date']}; host: {record['host']}", ""]
    if n_teachers == 1:
        lines += [f"Fine-tuned fp32 model (the teacher): test accuracy {rows[0]['teacher_test_accuracy']:.4f}. "
                  f"Recipe: {record['recipe']}.", ""]
    else:
        lines += [f"Recipe: {record['recipe']}. These rows were distilled from {n_teachers} different fine-tuned "
                  "fp32 models (teachers; column 'teacher', with its test accuracy): each was made by "
                  "`python benchmarks/finetune_minilm.py --keep runs/models`, re-run where runs/ was not kept, and "
                  "float rounding on another host gives another model. Each row's drop is from its own teacher.", ""]
    lines += ["| run seed | stage seeds | layers kept | epoch kept | dev acc | dev agreement | test acc | drop (points) "
              "| test agreement | distill s |" + (" teacher |" if n_teachers > 1 else ""),
              "|---|---|---|---|---|---|---|---|---|---|" + ("---|" if n_teachers > 1 else "")]
    for r, tid in zip(rows, ids):
        seeds = ", ".join(f"{k} {v}" for k, v in r["stage_seeds"].items())
        teacher = ""
        if n_teachers > 1:
            tag = chr(ord("A") + tid)
            teacher = f" {tag} ({r['teacher_test_accuracy']:.4f}{', ' + r['host'] if r.get('host') else ''}) |"
        lines.append(f"| {r['seed']} | {seeds} | {r['layer_map']} | {r['best_epoch']} | {r['dev_accuracy']:.4f} | "
                     f"{r['dev_agreement']:.4f} | {r['test_accuracy']:.4f} | {r['drop_points']:+.2f} | "
                     f"{r['test_agreement']:.4f} | {r['distill_seconds']:.0f} |{teacher}")
    a, d = s["test_accuracy"], s["drop_points"]
    sd = lambda x: f"{x:.2f}" if x is not None else "n/a"  # noqa: E731
    lines += ["", f"Over {len(s['seeds'])} seeds: test accuracy mean {a['mean']:.4f} (min {a['min']:.4f}, max "
                  f"{a['max']:.4f}); drop mean {d['mean']:+.2f} points, sd {sd(d['sd'])}, worst {d['max']:+.2f}. "
                  f"Accuracy goal (drop <= {GOAL_DROP} point): met by {s['goal_met']} of {len(s['seeds'])} seeds.", "",
              SHUFFLE_NOTE[record.get("shuffle", "seed + epoch")], ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", choices=("sst2", "banking77"), default="sst2")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--recipe", type=Path, metavar="FILE",
                    help="path to a candidate recipe .yaml, run instead of the cpu target's recipe")
    add_publish_option(ap)
    args = ap.parse_args()
    RESULTS = results_dir(args.publish)
    from edgebert.artifact import now_iso, write_json

    ds = args.dataset
    model = ROOT / f"runs/models/minilm-{ds}"
    if not model.is_dir():
        sys.exit(f"missing {model}: run python benchmarks/finetune_minilm.py --keep runs/models first")
    edgebert = [sys.executable, "-m", "edgebert"]
    recipe = args.recipe.resolve() if args.recipe else None
    if recipe is not None and not recipe.is_file():
        sys.exit(f"no recipe file {args.recipe}")
    tag = f"{recipe.stem}-{ds}" if recipe else ds
    out_json = RESULTS / f"cpu-seeds-{tag}.json"
    old = json.loads(out_json.read_text()) if out_json.is_file() else {}
    if old and old.get("shuffle", "seed + epoch") not in CURRENT_SHUFFLE:
        sys.exit(f"{out_json} holds runs made with the old distillation shuffle (seed + epoch); move it aside first")
    recipe_file = (str(recipe.relative_to(ROOT)) if recipe.is_relative_to(ROOT) else str(recipe)) if recipe else None
    recipe_sha = hashlib.sha256((recipe or target_recipe_file()).read_bytes()).hexdigest()
    if old and (old.get("recipe_file") != recipe_file or old.get("recipe_sha256") != recipe_sha):
        sys.exit(f"{out_json} holds runs of another recipe ({old.get('recipe_file') or 'the cpu target'}"
                 f"{', sha256 ' + str(old.get('recipe_sha256'))[:12] if old.get('recipe_sha256') else ''}); "
                 "move it aside first")
    from edgebert import models

    why = stale_record(old, planned_recipe_line(recipe, models.load_config(str(model))))
    if why:
        sys.exit(f"{out_json}: {why}; move it aside first")
    rows = {r["seed"]: r for r in old.get("rows", [])}

    def command(seeds) -> str:
        return shlex.join(["python", "benchmarks/cpu_seeds.py", "--dataset", ds, "--seeds",
                           *(str(s) for s in sorted(seeds)), *(["--recipe", recipe_file] if recipe_file else [])])

    record = {"dataset": ds, "command": command(set(args.seeds) | set(rows)), "recipe_file": recipe_file,
              "recipe_sha256": recipe_sha,
              "shuffle": "epoch_seed", "date": now_iso(), "host": host_info()["processor"]}
    for seed in args.seeds:
        if recipe is None:
            art = ROOT / (ARTIFACTS[ds] if seed == 0 else f"runs/seeds/{ds}-s{seed}")  # seed 0: the goals run
        else:
            art = ROOT / f"runs/seeds/{tag}-s{seed}"
        bench_out = ROOT / f"runs/seeds/{tag}-s{seed}-bench"
        extra = ["--recipe", str(recipe)] if recipe is not None else []
        sh([*edgebert, "compress", "--model", str(model), "--target", "cpu", "--data", str(DATA / ds),
            "--out", str(art), "--seed", str(seed), *extra, "--quiet"])
        sh([*edgebert, "bench", str(model), str(art), "--data", str(DATA / ds), "--split", "test",
            "--rounds", "1", "--warmup", "2", "--latency-samples", "20", "--no-memory",
            "--out", str(bench_out), "--overwrite", "--quiet"])
        rows[seed] = seed_row(seed, model, art, json.loads((bench_out / "bench.json").read_text()))
        if out_json.is_file():  # another seed's process may have written rows meanwhile: keep them
            done = json.loads(out_json.read_text()).get("rows", [])
            rows = {**{r["seed"]: r for r in done}, **rows}
            record["command"] = command(set(args.seeds) | set(rows))
        record["recipe"] = recipe_line(json.loads((art / "manifest.json").read_text()))
        record["rows"] = [rows[k] for k in sorted(rows)]
        record["summary"] = summary(record["rows"])
        write_json(out_json, record)
        (RESULTS / f"cpu-seeds-{tag}.md").write_text(markdown(record), encoding="utf-8")
    print((RESULTS / f"cpu-seeds-{tag}.md").read_text())


if __name__ == "__main__":
    main()
