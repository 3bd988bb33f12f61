"""The profile report: a table comparing artifacts side by side, its JSON, and a quality plot.

Every figure is defined once (`definitions()`): the table's caption lists the definitions of
its columns, the JSON carries all of them in a `definitions` block. The plot shows Recall@20
against bytes on disk and against p50 latency (at the smallest batch, history length and
thread count of the sweep) with the Pareto front marked: the artifacts no other artifact beats
on both axes (higher Recall@20, and smaller or faster), in the table's units (KiB, µs). It is
drawn with matplotlib's Agg backend (no display needed).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from pathlib import Path

from edgegnn.profile.probe import FIELDS

MIB = 2 ** 20
ARTIFACT_FIELDS = {
    "name": "the artifact's label (its folder name)",
    "target": "the target it was exported for",
    "precision": "the model's precision (fp32, fp16, int8)",
    "recipe": "the compression passes applied, in order",
    "status": "ok: measured here; emulated: ran under QEMU (correctness only, latency not meaningful); "
              "skipped: could not run here (see message)",
    "correct": "emulated artifacts: the emulated ranking of every configuration's first query equals a native run's",
    "recall@20": "share of each test user's held-out items in the artifact's top 20 (training items removed), "
                 "averaged over users",
    "ndcg@20": "normalized discounted cumulative gain of the artifact's top 20, averaged over test users",
}
# The tables: (header, row key, scale, definition key) of each column. "artifacts" has one row
# per artifact; the others one row per configuration, the artifacts of a configuration adjacent.
CONFIG = [("artifact", "artifact", None, None), ("B", "batch", None, "batch"),
          ("H", "history_used", None, "history_used"), ("thr", "threads", None, "threads")]
ARTIFACT_ROWS = [("target", "target", None, "target"), ("recipe", "recipe", None, "recipe"),
                 ("disk KiB", "disk_bytes", 1024, "disk_bytes"), ("R@20", "recall@20", None, "recall@20"),
                 ("N@20", "ndcg@20", None, "ndcg@20")]
US = 1e-3    # ms -> µs
LATENCY = CONFIG + [("p50", "p50_ms", US, "p50_ms"), ("p90", "p90_ms", US, "p90_ms"),
                    ("p99", "p99_ms", US, "p99_ms"), ("max", "max_ms", US, "max_ms"),
                    ("users/s", "throughput_users_per_s", None, "throughput_users_per_s")]
COLD = CONFIG + [("load", "load_ms", None, "load_ms"), ("1st", "first_inference_ms", None, "first_inference_ms"),
                 ("base", "baseline_rss", MIB, "baseline_rss"), ("+load", "load_peak_growth", MIB, "load_peak_growth"),
                 ("+run", "run_peak_growth", MIB, "run_peak_growth"), ("peak", "peak_rss", MIB, "peak_rss")]
TABLES = {"artifacts": ARTIFACT_ROWS, "steady-state latency (µs)": LATENCY, "cold start (ms), memory (MiB)": COLD}
PASS_LABELS = {"low_rank": lambda e: f"rank{e.get('rank')}", "share": lambda e: "share",
               "prune": lambda e: f"prune{e.get('sparsity')}", "product_quantize": lambda e: f"pq{e.get('subvectors')}",
               "quantize": lambda e: str(e.get("precision", "int8"))}


def definitions() -> dict[str, str]:
    """What every figure of the report means (probe figures and artifact fields)."""
    return {**FIELDS, **ARTIFACT_FIELDS}


def to_dict(result) -> dict:
    """The JSON form of a `ProfileResult`: definitions, host, sweep, artifacts, results."""
    return {"definitions": definitions(), "host": result.host, "sweep": asdict(result.sweep),
            "artifacts": list(result.artifacts.values()), "results": result.rows}


def write_json(result, path: str | Path) -> Path:
    """Write `to_dict(result)` to `path` (parents created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_dict(result), indent=2, sort_keys=True, default=_jsonable) + "\n")
    return path


def artifact_columns(result) -> dict[str, list]:
    """{artifact name: its values in ARTIFACT_ROWS order} (the artifacts table)."""
    out = {}
    for info in result.artifacts.values():
        values = {**info, **{k: v for k, v in (info.get("quality") or {}).items() if "@" in k}}
        values["recipe"] = recipe_label((info.get("manifest") or {}).get("recipe") or [], info.get("precision"))
        out[info["name"]] = [_scaled(values.get(key), scale) for _, key, scale, _ in ARTIFACT_ROWS]
    return out


def recipe_label(entries: list[dict], precision: str | None) -> str:
    """A recipe in a few characters: "fp32", "int8", "rank8+int8", "share+int4" (each pass and its
    main setting; the precision of what shipped when nothing was applied)."""
    labels = [PASS_LABELS.get(entry.get("pass"), lambda e: str(e.get("pass")))(entry) for entry in entries]
    return "+".join(labels) or str(precision or "none")


def config_rows(result, columns) -> list[list]:
    """One row per measured configuration (artifacts interleaved), in the columns' units ("emu": emulated)."""
    rows = []
    for row in sorted(result.rows, key=lambda r: (r["batch"], r["history_len"], r["threads"])):
        out = []
        for _, key, scale, _ in columns:
            value = row.get(key)
            if row["status"] == "emulated" and key.endswith(("_ms", "_per_s")):
                value = "emu"
            out.append(_scaled(value, scale))
        rows.append(out)
    return rows


def results_table(result):
    """The report for a terminal (a rich renderable): the artifacts (size, quality), then steady-state
    latency and cold start/memory per configuration, captioned with the definition of every column."""
    from rich import box
    from rich.console import Group
    from rich.table import Table

    side = Table(title="artifacts", title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    side.add_column("artifact", overflow="fold", min_width=14)
    for header, _, _, key in ARTIFACT_ROWS:
        if key in ("disk_bytes", "recall@20", "ndcg@20"):
            side.add_column(header, justify="right", no_wrap=True)
        else:
            side.add_column(header, overflow="fold")
    for name, values in artifact_columns(result).items():
        side.add_row(name, *(_fmt(v) for v in values))
    tables = [side]
    for title, spec in list(TABLES.items())[1:]:
        table = Table(title=title, title_justify="left",
                      box=box.SIMPLE_HEAD, pad_edge=False)
        for i, (header, *_) in enumerate(spec):
            if i == 0:       # long names wrap; numbers never do
                table.add_column(header, justify="left", overflow="fold", min_width=14)
            else:
                table.add_column(header, justify="right", no_wrap=True)
        for row in config_rows(result, spec):
            table.add_row(*(_fmt(v) for v in row))
        tables.append(table)
    return Group(*tables, caption(result))


LEGEND = ("each configuration measured in a fresh process. B users per call, H history items used, "
          "thr runtime threads; p50-max: latency of one call; "
          "load: open the artifact; 1st: first call; base: the process before loading; +load, +run: peak "
          "memory growth while loading, running; peak: the process's peak (each definition in full: the "
          "JSON report's 'definitions', --report)")


def caption(result) -> str:
    """A short legend of the tables' columns (the full definitions are in the JSON report), the
    summary against the baseline, and the skipped and emulated artifacts' messages."""
    defs = definitions()
    lines = [LEGEND]
    if any(info["status"] != "ok" for info in result.artifacts.values()):
        lines.append(f"status: {defs['status']}")
    for info in result.artifacts.values():
        if info["status"] != "ok":
            verdict = "match" if info.get("correct") else "DIFFER FROM"
            extra = "" if "correct" not in info else f" (answers {verdict} native)"
            lines.append(f"{info['name']}: {info['status']}: {info['message']}{extra}")
    lines += quality_lines(result)
    return "\n".join(lines + summary_lines(result))


def quality_lines(result) -> list[str]:
    """Where each R@20/N@20 comes from, one line for all artifacts that share the source."""
    said: dict[str, list[str]] = {}
    for info in result.artifacts.values():
        quality = info.get("quality")
        if quality:
            popular = quality.get("popularity")
            against = "" if not popular else f"; popularity R@20 {popular['recall@20']:.4f} on the same users"
            said.setdefault(f"R@20/N@20 {quality['source']} ({quality.get('users')} users){against}",
                            []).append(info["name"])
    if len(said) == 1:
        return [next(iter(said))]
    return [f"{', '.join(names)}: {line}" for line, names in said.items()]


def summary_lines(result) -> list[str]:
    """One line per compressed artifact against the fp32 artifact of its target, in the ratios a
    user decides on: "int8-onnx vs fp32-onnx: 3.7x smaller, 1.2x faster (p50, B=1 H=20 thr=1),
    Recall@20 -0.1 %". Latency is compared at the sweep's first configuration, measured ones only."""
    infos = [info for info in result.artifacts.values() if info["status"] == "ok"]
    first = min(result.rows, key=lambda r: (r["batch"], r["history_len"], r["threads"]), default=None)
    p50 = {row["artifact"]: row.get("p50_ms") for row in result.rows if first is not None and row["status"] == "ok"
           and (row["batch"], row["history_len"], row["threads"]) == (first["batch"], first["history_len"],
                                                                      first["threads"])}
    lines = []
    for info in infos:
        base = next((b for b in infos if b["target"] == info["target"] and b["precision"] == "fp32"
                     and not b.get("recipe")), None)
        if base is None or base is info:
            continue
        parts = [f"{base['disk_bytes'] / info['disk_bytes']:.1f}x smaller"]
        if p50.get(info["name"]) and p50.get(base["name"]):
            ratio = p50[base["name"]] / p50[info["name"]]
            speed = f"{ratio:.1f}x faster" if ratio >= 1 else f"{1 / ratio:.1f}x slower"
            parts.append(f"{speed} (p50, B={first['batch']} H={first['history_len']} thr={first['threads']})")
        recall, base_recall = ((x.get("quality") or {}).get("recall@20") for x in (info, base))
        if recall is not None and base_recall:
            parts.append(f"Recall@20 {100 * (recall - base_recall) / base_recall:+.1f} %")
        lines.append(f"{info['name']} vs {base['name']}: " + ", ".join(parts))
        if p50.get(info["name"]) and p50.get(base["name"]) and p50[info["name"]] > p50[base["name"]]:
            lines.append(f"  slower at this size: {base['name']}'s {base['disk_bytes'] / 1024:,.0f} KiB fit in the CPU "
                         "cache, so fewer bytes save no memory traffic while the smaller form adds steps "
                         "(quantize, rescale, two matmuls); compression pays in time on large catalogs")
    return lines


def plot_points(result) -> list[dict]:
    """Per artifact with a Recall@20: name, recall, disk bytes, p50 ms at the sweep's first configuration."""
    points = []
    for info in result.artifacts.values():
        quality = info.get("quality") or {}
        if "recall@20" not in quality:
            continue
        rows = [r for r in result.rows if r["artifact"] == info["name"]]
        first = min(rows, key=lambda r: (r["batch"], r["history_len"], r["threads"]), default=None)
        latency = first["p50_ms"] if first is not None and info["status"] == "ok" else None
        points.append({"name": info["name"], "recall@20": quality["recall@20"], "disk_bytes": info["disk_bytes"],
                       "p50_ms": latency})
    return points


def pareto(points: list[dict], x: str) -> list[dict]:
    """Points not beaten by another on both axes: higher recall@20 and lower `x` (ties kept)."""
    usable = [p for p in points if p.get(x) is not None]
    front = []
    for p in usable:
        beaten = any(q is not p and q["recall@20"] >= p["recall@20"] and q[x] <= p[x]
                     and (q["recall@20"] > p["recall@20"] or q[x] < p[x]) for q in usable)
        if not beaten:
            front.append(p)
    return sorted(front, key=lambda p: p[x])


MARKERS = "osD^vP*Xhp<>"


def plot_figure(result):
    """The matplotlib Figure: Recall@20 vs disk KiB and vs p50 µs (the table's units), the Pareto
    fronts marked. Each artifact has its own colour and marker, named once in a legend under
    the panels: names written beside the points overlap when artifacts are close in size or
    speed, which they are (an int8 ONNX and an int8 TFLite file differ by a few KiB)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    points = plot_points(result)
    styles = {p["name"]: (plt.get_cmap("tab10")(i % 10), MARKERS[i % len(MARKERS)]) for i, p in enumerate(points)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 5))
    panels = [("disk_bytes", "model size on disk (KiB)", 1024),
              ("p50_ms", "p50 latency (µs, first configuration of the sweep)", US)]
    for ax, (key, label, scale) in zip(axes, panels):
        _plot_panel(ax, [p for p in points if p.get(key) is not None], key, label, scale, styles)
    handles = [plt.Line2D([], [], color=color, marker=marker, linestyle="none", label=name)
               for name, (color, marker) in styles.items()]
    handles.append(plt.Line2D([], [], color="tab:red", marker="o", markerfacecolor="none", label="Pareto front"))
    fig.legend(handles=handles, loc="lower center", ncol=min(4, len(handles)), fontsize=8, frameon=False)
    fig.suptitle("Recall@20 vs size and latency (higher and further left is better)")
    rows = -(-len(handles) // min(4, len(handles)))
    fig.tight_layout(rect=(0, 0.04 + 0.045 * rows, 1, 1))
    return fig


def _plot_panel(ax, usable: list[dict], key: str, label: str, scale: float, styles: dict) -> None:
    """One panel: each artifact's point in its style, the Pareto front over `key` joined in red."""
    ax.set_xlabel(label)
    ax.set_ylabel("Recall@20")
    ax.grid(alpha=0.3)
    if not usable:
        ax.text(0.5, 0.5, "no artifact with Recall@20 and this figure\n(give --data, or export with --data)",
                ha="center", va="center", transform=ax.transAxes)
        return
    for p in usable:
        color, marker = styles[p["name"]]
        ax.scatter([p[key] / scale], [p["recall@20"]], color=color, marker=marker, s=40, zorder=2)
    front = pareto(usable, key)
    ax.plot([p[key] / scale for p in front], [p["recall@20"] for p in front], color="tab:red", marker="o",
            markerfacecolor="none", markersize=12, zorder=3)


def write_plot(result, path: str | Path) -> Path:
    """Save `plot_figure(result)` as a PNG at `path` (parents created)."""
    import matplotlib.pyplot as plt

    fig = plot_figure(result)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _scaled(value, scale):
    if value is None:
        return ""
    if scale and isinstance(value, (int, float)) and not isinstance(value, bool):
        return value / scale
    return value


def _fmt(value) -> str:
    """A cell: integers with separators, floats to 4 significant digits, text as is."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if not math.isfinite(value):
        return "-"
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:.3g}"


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)
