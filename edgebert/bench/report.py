"""Tables (Markdown, CSV), the Pareto plot, and merging bench results from several devices.

``edgebert bench`` writes bench.md / bench.csv / pareto.png with :func:`write_bench_outputs`;
``edgebert report`` merges bench.json files from several hosts with :func:`merge_reports` into one
table and one plot grouped by device (host name + CPU / GPU).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

#: out-of-scope metrics (data with an out-of-scope class: edgebert.metrics.out_of_scope_metrics)
OOS_FIELDS = ("in_scope_accuracy", "out_of_scope_recall", "out_of_scope_precision")
#: columns of bench.csv / report rows, in order
CSV_COLUMNS = (
    "device", "name", "role", "baseline", "runtime", "precision", "target_device", "provider", "status", "error",
    "accuracy", "macro_f1", "macro_precision", "macro_recall", "agreement", "n", *OOS_FIELDS,
    "p10_ms", "p25_ms", "p50_ms", "p75_ms", "p90_ms", "p99_ms", "mean_ms", "std_ms", "min_ms",
    "max_ms", "iqr_ms", "latency_runs", "ratio_vs_reference",
    "fixed_seq_len", "fixed_p50_ms", "fixed_p90_ms", "fixed_p99_ms",
    "throughput_mean", "throughput_min", "throughput_max", "throughput_batch",
    "peak_rss_mb", "rss_runtime_mb", "rss_increase_mb", "size_bytes", "size_mb", "load_s", "path",
)

RUNTIME_COLORS = {"pytorch": "#1f77b4", "onnxruntime": "#ff7f0e", "torchscript": "#2ca02c",
                  "tensorrt": "#9467bd", "openvino": "#8c564b"}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


# -- rows -------------------------------------------------------------------------------------

def variant_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    """One flat row per variant (the CSV columns), from a bench.json dict."""
    device = results.get("environment", {}).get("device_label", "")
    rows = []
    for v in results.get("variants", []):
        acc = v.get("accuracy") or {}
        lat = v.get("latency") or {}
        fixed = v.get("latency_fixed") or {}
        tput = v.get("throughput") or {}
        mem = v.get("memory") or {}
        row = {
            "device": device, "name": v.get("name"), "role": v.get("role"), "baseline": v.get("baseline"),
            "runtime": v.get("runtime"), "precision": v.get("precision"), "target_device": v.get("device"),
            "provider": (v.get("providers") or [None])[0], "provider_fallback": v.get("provider_fallback"),
            "status": v.get("status"), "error": v.get("error"),
            "accuracy": acc.get("accuracy"), "macro_f1": acc.get("macro_f1"),
            "macro_precision": acc.get("macro_precision"), "macro_recall": acc.get("macro_recall"),
            "agreement": acc.get("agreement"), "n": acc.get("n"),
            **{k: (acc.get("out_of_scope") or {}).get(k) for k in OOS_FIELDS},
            **{f"{k}_ms": lat.get(k) for k in ("p10", "p25", "p50", "p75", "p90", "p99", "mean", "std",
                                               "min", "max", "iqr")},
            "latency_runs": lat.get("n"), "ratio_vs_reference": lat.get("ratio_vs_reference"),
            "fixed_seq_len": fixed.get("seq_len"), "fixed_p50_ms": fixed.get("p50"),
            "fixed_p90_ms": fixed.get("p90"), "fixed_p99_ms": fixed.get("p99"),
            "throughput_mean": tput.get("mean"), "throughput_min": tput.get("min"),
            "throughput_max": tput.get("max"), "throughput_batch": tput.get("batch"),
            "peak_rss_mb": mem.get("peak_rss_mb"), "rss_runtime_mb": mem.get("rss_runtime_mb"),
            "rss_increase_mb": mem.get("increase_mb"), "size_bytes": v.get("size_bytes"),
            "size_mb": (v["size_bytes"] / 1e6) if v.get("size_bytes") is not None else None,
            "load_s": v.get("load_s"), "path": v.get("path"), "budgets": v.get("budgets"),
        }
        rows.append(row)
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike) -> None:
    """Rows as CSV with :data:`CSV_COLUMNS` (empty cell for None)."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(CSV_COLUMNS), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in CSV_COLUMNS})


# -- Markdown ---------------------------------------------------------------------------------

def _num(v: Any, fmt: str) -> str:
    return "–" if v is None else format(v, fmt)


def _ms(v: float | None) -> str:
    if v is None:
        return "–"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}" if v >= 10 else f"{v:.2f}" if v >= 1 else f"{v:.3f}"


def _speedup(ratio: float | None) -> str:
    """The reference's p50 over the variant's, as '18.2x' ('0.31x': slower). A variant many times faster
    than the reference has a latency ratio near 0, which two decimals showed as '0.00'."""
    if not ratio:
        return "–"
    v = 1.0 / ratio
    return f"{v:.3g}x" if v < 1 else f"{v:.2f}x" if v < 10 else f"{v:.1f}x" if v < 100 else f"{v:.0f}x"


def markdown_table(rows: Sequence[dict[str, Any]]) -> str:
    """The comparison table (one line per variant); failed / skipped rows say so and why below."""
    fixed = any(r.get("fixed_p50_ms") is not None for r in rows)
    seq = next((r["fixed_seq_len"] for r in rows if r.get("fixed_seq_len")), None)
    oos = any(r.get("out_of_scope_recall") is not None for r in rows)
    head = ["variant", "runtime", "precision", "accuracy", "macro-F1", "agreement"]
    head += ["in-scope acc.", "OOS recall"] if oos else []
    head += ["p50 ms [p10–p90]", "p90 ms", "p99 ms", "speed-up vs ref"]
    if fixed:
        head.append(f"p50 ms @{seq} tok")
    head += ["throughput /s", "peak RSS MB", "size MB", "load s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    notes = []
    for r in rows:
        name = str(r["name"]) + (" (ref)" if r.get("is_reference") else "")
        if r.get("status") != "ok":
            name += f" ({r.get('status')})"
            notes.append(f"- **{r['name']}** {r.get('status')}: {r.get('error') or ''}".rstrip())
        spread = "–"
        if r.get("p50_ms") is not None:
            spread = f"{_ms(r['p50_ms'])} [{_ms(r.get('p10_ms'))}–{_ms(r.get('p90_ms'))}]"
        cells = [name, r.get("runtime") or "–", r.get("precision") or "–", _num(r.get("accuracy"), ".4f"),
                 _num(r.get("macro_f1"), ".4f"), _num(r.get("agreement"), ".3f")]
        if oos:
            cells += [_num(r.get("in_scope_accuracy"), ".4f"), _num(r.get("out_of_scope_recall"), ".4f")]
        cells += [spread, _ms(r.get("p90_ms")), _ms(r.get("p99_ms")), _speedup(r.get("ratio_vs_reference"))]
        if fixed:
            cells.append(_ms(r.get("fixed_p50_ms")))
        cells += [_num(r.get("throughput_mean"), ".1f"), _num(r.get("peak_rss_mb"), ".0f"),
                  _num(r.get("size_mb"), ".1f"), _num(r.get("load_s"), ".2f")]
        lines.append("| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |")
        if r.get("budgets"):
            notes.append(_budget_note(r))
        if r.get("provider_fallback"):
            notes.append(f"- **{r['name']}**: {r['provider_fallback']}")
    if notes:
        lines += ["", *notes]
    return "\n".join(lines)


def _budget_note(row: dict[str, Any]) -> str:
    """'- **name**: target T's budgets here: p50 x ms (budget y ms, met), peak RSS ... (over)'."""
    b = row["budgets"]
    parts = []
    for label, value, unit, budget, within in (("p50", row.get("p50_ms"), "ms", b.get("latency_ms"), b.get("within_latency")),
                                               ("peak RSS", row.get("peak_rss_mb"), "MiB", b.get("memory_mb"),
                                                b.get("within_memory"))):
        if budget is None:
            continue
        verdict = "not measured" if within is None else "met" if within else "over"
        shown = "–" if value is None else f"{value:.4g}"
        parts.append(f"{label} {shown} {unit} (budget {budget:g} {unit}: {verdict})")
    return f"- **{row['name']}**: target {b.get('target')}'s budgets on this device: " + "; ".join(parts)


def bench_markdown(results: dict[str, Any]) -> str:
    """bench.md: a heading with data / device / protocol, then the table."""
    rows = _with_reference(variant_rows(results), results.get("reference"))
    data, env, proto = results["data"], results["environment"], results["protocol"]
    head = [
        f"# edgebert bench: {data['name']} ({data['split']}, {data['rows']} rows)",
        "",
        f"Device: {env.get('device_label')}; threads {proto.get('threads')}; "
        f"{proto.get('isolation')}; {proto.get('rounds')} rounds x {proto.get('latency_samples')} "
        f"sentences at batch 1 after {proto.get('warmup_runs')} warm-up runs; throughput at batch "
        f"{proto.get('throughput_batch')}. Latency in ms: p50 [p10–p90]; reference: {results.get('reference')}.",
        "",
    ]
    text = "\n".join(head) + markdown_table(rows) + "\n"
    if results.get("headline"):
        text += "\n" + headline_markdown(results["headline"])
    return text


def headline_markdown(h: dict[str, Any]) -> str:
    """The headline of a ``--baselines`` bench (:func:`edgebert.bench.baselines.headline`): the strongest
    baseline, then each edgebert row's p50 speed-up against it and against Optimum's unoptimized AVX2 int8."""
    def named(b: dict[str, Any] | None) -> str:
        if not b:
            return "–"
        drop = "" if b.get("drop_points") is None else f", {-b['drop_points']:+.2f} points"
        return f"**{b['name']}**, p50 {_ms(b['p50_ms'])} ms, accuracy {_num(b['accuracy'], '.4f')}{drop}"

    def times(v: float | None, interval: dict[str, Any] | None = None) -> str:
        if v is None:
            return "–"
        return f"{v:.2f}x" + (f" ({interval['low']:.2f}-{interval['high']:.2f})" if interval else "")

    fp32 = h.get("fp32")
    lines = ["## Headline", "",
             f"fp32 model: {fp32['name'] if fp32 else '–'}, accuracy {_num((fp32 or {}).get('accuracy'), '.4f')}. "
             f"Strongest baseline (the fastest third-party baseline within {h['budget_points']:g} point of it): "
             f"{named(h.get('strongest'))}. Optimum's unoptimized AVX2 int8: {named(h.get('optimum_avx2'))}.", ""]
    lines += [f"- {n}" for n in h.get("notes") or []]
    if h.get("notes"):
        lines.append("")
    lines += ["| row | accuracy | drop (points) | p50 ms | × strongest baseline | × Optimum AVX2 int8 |",
              "|---|---|---|---|---|---|"]
    for r in h.get("rows") or []:
        lines.append(f"| {r['name']} | {_num(r['accuracy'], '.4f')} | {_num(r['drop_points'], '.2f')} | "
                     f"{_ms(r['p50_ms'])} | {times(r['speedup_vs_strongest'], r.get('speedup_vs_strongest_interval'))} | "
                     f"{times(r['speedup_vs_optimum_avx2'], r.get('speedup_vs_optimum_avx2_interval'))} |")
    if any(r.get("speedup_vs_strongest_interval") or r.get("speedup_vs_optimum_avx2_interval") for r in h.get("rows") or []):
        lines += ["", "In brackets: 95 % paired bootstrap interval over the timing rounds and the sentences."]
    return "\n".join(lines) + "\n"


def _with_reference(rows: list[dict[str, Any]], reference: str | None) -> list[dict[str, Any]]:
    for r in rows:
        r["is_reference"] = r["name"] == reference
    return rows


# -- Pareto -----------------------------------------------------------------------------------

def pareto_front(latency: Sequence[float], accuracy: Sequence[float]) -> list[int]:
    """Indices of the points no other point beats (lower-or-equal latency and higher-or-equal
    accuracy, strictly better in one), sorted by latency."""
    pts = list(zip(latency, accuracy))
    front = []
    for i, (x, y) in enumerate(pts):
        dominated = any((x2 <= x and y2 >= y) and (x2 < x or y2 > y) for j, (x2, y2) in enumerate(pts) if j != i)
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: (pts[i][0], -pts[i][1]))


def _place_labels(ax, fig, xy_points, texts, marker_px) -> None:
    """Annotate each point, choosing for each label the first offset whose box overlaps no other
    label, no marker and stays inside the axes (greedy; falls back to the least overlapping)."""
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    axes_box = ax.get_window_extent(renderer)
    taken = []
    for (x, y), r in zip(xy_points, marker_px):
        px, py = to_px((x, y))
        taken.append((px - r, py - r, px + r, py + r))
    base = [(8, 6), (8, -6), (-8, 6), (-8, -6), (0, 12), (0, -12), (14, 0), (-14, 0)]
    candidates = [(dx * k, dy * k) for k in (1, 2, 3.5, 5) for dx, dy in base]

    def overlap(a, b) -> float:
        w = min(a[2], b[2]) - max(a[0], b[0])
        h = min(a[3], b[3]) - max(a[1], b[1])
        return w * h if w > 0 and h > 0 else 0.0

    order = sorted(range(len(texts)), key=lambda i: xy_points[i][0])
    for i in order:
        best = None
        for dx, dy in candidates:
            ann = ax.annotate(
                texts[i], xy_points[i], xytext=(dx, dy), textcoords="offset points", fontsize=8,
                ha="left" if dx > 0 else "right" if dx < 0 else "center",
                va="bottom" if dy > 0 else "top" if dy < 0 else "center",
                arrowprops=dict(arrowstyle="-", lw=0.5, color="0.5", shrinkA=0, shrinkB=0),
                bbox=dict(boxstyle="round,pad=0.15", fc="white", ec="none", alpha=0.7))
            bb = ann.get_window_extent(renderer)
            box = (bb.x0 - 2, bb.y0 - 2, bb.x1 + 2, bb.y1 + 2)
            outside = (box[0] < axes_box.x0 or box[2] > axes_box.x1 or box[1] < axes_box.y0 or box[3] > axes_box.y1)
            cost = sum(overlap(box, t) for t in taken) + (1e6 if outside else 0.0)
            if best is None or cost < best[0]:
                if best is not None:
                    best[1].remove()
                best = (cost, ann, box)
            else:
                ann.remove()
            if cost == 0:
                break
        taken.append(best[2])


def plot_pareto(points: Sequence[dict[str, Any]], path: str | os.PathLike, *, title: str,
                color_by: str = "runtime", marker_by: str | None = None, front_by: str | None = None) -> Path:
    """Accuracy (y) vs p50 latency (x, log) per variant, marker area by peak RSS, Pareto front
    drawn; one colour per ``color_by`` value (and one marker shape per ``marker_by`` value).
    With ``front_by`` (e.g. ``"device"``) one front is drawn per value of that key, in the colour
    of the group: a front across different machines means nothing.

    Each point is a row of :func:`variant_rows` (``name``, ``p50_ms``, ``accuracy``,
    ``peak_rss_mb``, the grouping keys). Rows without latency or accuracy are left out.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    pts = [p for p in points if p.get("p50_ms") and p.get("accuracy") is not None]
    fig, ax = plt.subplots(figsize=(9, 6), dpi=120)
    ax.set_xscale("log")
    ax.set_xlabel("p50 latency, batch 1 (ms, log scale)")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    if not pts:
        ax.text(0.5, 0.5, "no successful variant to plot", ha="center", va="center", transform=ax.transAxes)
        fig.savefig(path)
        plt.close(fig)
        return Path(path)
    xs = [float(p["p50_ms"]) for p in pts]
    ys = [float(p["accuracy"]) for p in pts]
    rss = [p.get("peak_rss_mb") or 0.0 for p in pts]
    top = max(rss) or 1.0
    sizes = [60 + 540 * (r / top) for r in rss]  # marker area (pt^2) proportional to peak RSS
    groups = list(dict.fromkeys(str(p.get(color_by)) for p in pts))
    palette = [RUNTIME_COLORS.get(g) for g in groups] if color_by == "runtime" else [None] * len(groups)
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    colors = {g: (c or cycle[i % len(cycle)]) for i, (g, c) in enumerate(zip(groups, palette))}
    shapes = list(dict.fromkeys(str(p.get(marker_by)) for p in pts)) if marker_by else []
    markers = {s: _MARKERS[i % len(_MARKERS)] for i, s in enumerate(shapes)}

    # Axis limits first (label placement needs the final data -> pixel transform).
    lo, hi = min(xs), max(xs)
    ax.set_xlim(lo / 1.8, hi * 1.8)
    ylo, yhi = min(ys), max(ys)
    pad = max(0.05 * (yhi - ylo), 0.02)
    ax.set_ylim(ylo - 2 * pad, min(yhi + 2 * pad, 1.0))  # no accuracy above 1.0 on the axis

    groups_front: dict[str, list[int]] = {}
    for i, p in enumerate(pts):
        groups_front.setdefault(str(p.get(front_by)) if front_by else "", []).append(i)
    front: list[int] = []
    for key, members in groups_front.items():
        sub = [members[j] for j in pareto_front([xs[i] for i in members], [ys[i] for i in members])]
        front += sub
        fx = [xs[i] for i in sub] + [hi * 1.8]
        fy = [ys[i] for i in sub] + [ys[sub[-1]]]
        color = colors.get(key, "0.35") if front_by == color_by and front_by else "0.35"
        ax.step(fx, fy, where="post", color=color, lw=1.2, ls="--", zorder=1, alpha=0.9)
    for i, p in enumerate(pts):
        ax.scatter(xs[i], ys[i], s=sizes[i], color=colors[str(p.get(color_by))],
                   marker=markers.get(str(p.get(marker_by)), "o") if marker_by else "o",
                   alpha=0.8, zorder=3, edgecolors="black" if i in front else "white",
                   linewidths=1.5 if i in front else 0.8, clip_on=False)  # a point at 1.0 shows whole
    fig.tight_layout()
    fig.canvas.draw()
    marker_px = [0.5 * (s ** 0.5) * fig.dpi / 72 for s in sizes]  # radius in pixels
    _place_labels(ax, fig, list(zip(xs, ys)), [str(p["name"]) for p in pts], marker_px)

    handles = [Line2D([], [], marker="o", ls="", color=colors[g], markersize=8, label=g) for g in groups]
    handles += [Line2D([], [], marker=markers[s], ls="", color="0.4", markersize=8, label=s) for s in shapes]
    front_label = f"Pareto front per {front_by}" if front_by else "Pareto front"
    handles.append(Line2D([], [], color="0.35", ls="--", label=f"{front_label} (black edge)"))
    handles.append(Line2D([], [], ls="", label=f"marker area ∝ peak RSS (max {top:.0f} MB)"))
    ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.85)
    fig.savefig(path)
    plt.close(fig)
    return Path(path)


# -- outputs of one bench ---------------------------------------------------------------------

def write_bench_outputs(results: dict[str, Any], out: str | os.PathLike) -> dict[str, Path]:
    """bench.json's companions: bench.csv, bench.md and pareto.png in ``out``."""
    out = Path(out)
    rows = _with_reference(variant_rows(results), results.get("reference"))
    write_csv(rows, out / "bench.csv")
    (out / "bench.md").write_text(bench_markdown(results), encoding="utf-8")
    data, env = results["data"], results["environment"]
    plot_pareto(rows, out / "pareto.png",
                title=f"{data['name']} {data['split']} ({data['rows']} rows) on {env.get('device_label')}")
    return {"csv": out / "bench.csv", "md": out / "bench.md", "png": out / "pareto.png"}


# -- merging several bench results ------------------------------------------------------------

@dataclass
class ReportResult:
    """What :func:`merge_reports` wrote: the folder, the merged JSON and the Markdown table."""

    out: Path
    report: dict[str, Any]
    markdown: str


def merge_reports(paths: Sequence[str | os.PathLike], out: str | os.PathLike | None = None) -> ReportResult:
    """Merge bench.json files (or bench output folders) from several devices into one table and one
    plot grouped by device; write report.md, report.json and pareto.png to ``out``."""
    from edgebert.artifact import check_writable, now_iso, write_json
    from edgebert.bench.schema import SCHEMA_VERSION, load_results
    from edgebert.errors import ConfigError

    if not paths:
        raise ConfigError("report needs at least one bench.json (or bench output folder).")
    results = [load_results(p) for p in paths]
    out = Path(out) if out is not None else Path("report-out") / _timestamp()
    check_writable(out)
    out.mkdir(parents=True, exist_ok=True)
    devices: dict[str, list[dict[str, Any]]] = {}
    sources = []
    for path, res in zip(paths, results):
        rows = _with_reference(variant_rows(res), res.get("reference"))
        for r in rows:
            r["data"] = f"{res['data']['name']}/{res['data']['split']}"
            r["source"] = str(path)
        devices.setdefault(res["environment"]["device_label"], []).extend(rows)
        sources.append({"path": str(path), "device": res["environment"]["device_label"],
                        "created": res.get("created"), "data": res["data"]["name"],
                        "split": res["data"]["split"], "reference": res.get("reference")})
    datasets = sorted({f"{r['data']['name']}/{r['data']['split']}" for r in results})
    lines = [f"# edgebert report: {len(results)} bench results, {len(devices)} devices", "",
             f"Data: {', '.join(datasets)}. Latency in ms: p50 [p10–p90], batch 1; speed-up vs each "
             "bench's own reference.", ""]
    if len(datasets) > 1:
        lines += ["**Warning:** the results come from different datasets / splits; accuracy is not "
                  "comparable across them.", ""]
    for device, rows in devices.items():
        lines += [f"## {device}", "", markdown_table(rows), ""]
    markdown = "\n".join(lines)
    all_rows = [r for rows in devices.values() for r in rows]
    report = {"schema_version": SCHEMA_VERSION, "tool": "edgebert report", "created": now_iso(),
              "sources": sources, "devices": {d: rows for d, rows in devices.items()}}
    write_json(out / "report.json", report)
    (out / "report.md").write_text(markdown + "\n", encoding="utf-8")
    plot_rows = [dict(r, name=f"{r['name']} @{r['device'].split(' (')[0]}") for r in all_rows]
    plot_pareto(plot_rows, out / "pareto.png", title=f"accuracy vs latency by device ({', '.join(datasets)})",
                color_by="device", marker_by="runtime", front_by="device")
    return ReportResult(out=out, report=report, markdown=markdown)


def _timestamp() -> str:
    import datetime as _dt

    return _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
