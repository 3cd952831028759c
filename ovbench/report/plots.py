"""Plots (PNG + SVG): metric vs each swept parameter, accuracy vs trainable parameters and vs training
time with the Pareto front. Error bars are 95% CI half-widths over seeds (``<metric>:ci``), or with
one seed the image bootstrap's (``<metric>:ci_kind`` = ``images``; each plot's title says which); a
categorical setting is drawn as points, never joined by a line that would suggest an order."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pandas as pd

from ovbench.sweep.labels import short_names


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.subplots(figsize=(5, 3.6))


def _save(plt, fig, path: Path) -> List[Path]:
    """PNG and SVG; the SVG without a date and with ids salted by its name, so the same numbers
    give the same file (committed reports then change only where a figure does)."""
    fig.tight_layout()
    out = []
    for ext in ("png", "svg"):
        p = path.with_suffix(f".{ext}")
        with plt.rc_context({"svg.hashsalt": p.name}):
            fig.savefig(p, dpi=120, metadata={"Date": None} if ext == "svg" else None)
        out.append(p)
    plt.close(fig)
    return out


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def bars_caption(table: pd.DataFrame, metric: str) -> str:
    """What the error bars of ``metric`` are: seed CIs, or one seed's image bootstrap."""
    kinds = set(table.get(f"{metric}:ci_kind", pd.Series(dtype=object)).dropna()) - {""}
    if kinds == {"images"}:
        return "bars: 95% bootstrap over evaluation images (one seed; not seed noise)"
    if "images" in kinds:
        return "bars: 95% CI over seeds; one-seed settings: image bootstrap"
    return "bars: 95% CI over seeds"


def metric_vs_param(table: pd.DataFrame, params: Sequence[str], metric: str, out_dir: Path) -> List[Path]:
    """One figure per swept parameter: mean ± 95% CI of ``metric``, one series per setting of the others."""
    files: List[Path] = []
    names = short_names(params)
    for p in params:
        plt, (fig, ax) = _figure()
        others = [q for q in params if q != p]
        groups = table.groupby(others, sort=False, dropna=False) if others else [((), table)]
        for key, g in groups:
            g = g.sort_values(p)
            # map(str), not astype(str): pandas' string dtype keeps a None option (a space's null) missing
            x = g[p] if _numeric(g[p]) else g[p].map(str)
            key = key if isinstance(key, tuple) else (key,)
            label = ", ".join(f"{names[q]}={v}" for q, v in zip(others, key)) or metric
            ax.errorbar(x, g[metric], yerr=g.get(f"{metric}:ci"), marker="o", capsize=3, label=label,
                        linestyle="-" if _numeric(g[p]) else "none")
        ax.set_xlabel(names[p])
        ax.set_ylabel(metric)
        ax.set_title(bars_caption(table, metric), fontsize=7)
        if _numeric(table[p]) and table[p].min() > 0 and table[p].max() / table[p].min() >= 10:
            ax.set_xscale("log")
        ax.legend(fontsize=7)
        files += _save(plt, fig, out_dir / f"{metric.replace('/', '_')}_vs_{names[p]}")
    return files


def pareto_front(x: Sequence[float], y: Sequence[float], maximize: bool = True) -> List[int]:
    """Indices of points no other point beats: no more cost (x) and a better-or-equal metric (y), one strictly."""
    better = (lambda a, b: a >= b) if maximize else (lambda a, b: a <= b)  # noqa: E731
    idx = []
    for i, (xi, yi) in enumerate(zip(x, y)):
        dominated = any(xj <= xi and better(yj, yi) and (xj < xi or yj != yi) for xj, yj in zip(x, y))
        if not dominated:
            idx.append(i)
    return sorted(idx, key=lambda i: x[i])


def label_offsets(x: Sequence[float], y: Sequence[float], labels: Sequence[str], ax) -> List[float]:
    """Vertical offsets (points) that keep point labels from overlapping: each label is pushed up past
    the labels already placed whose boxes it would cover (in display space, so log axes work too)."""
    pts = ax.transData.transform(list(zip(x, y)))
    placed: List[tuple] = []
    offsets = []
    for (px, py), label in sorted(zip(pts, labels), key=lambda t: (t[0][1], t[0][0])):
        width, height, dy = 5.5 * len(label), 9.0, 3.0
        while any(abs(px - qx) < max(width, qw) and abs(py + dy - qy) < height for qx, qy, qw in placed):
            dy += height
        placed.append((px, py + dy, width))
        offsets.append((label, dy))
    by_label = dict(offsets)
    return [by_label[lab] for lab in labels]


def accuracy_vs_cost(table: pd.DataFrame, metric: str, cost: str, out_dir: Path, maximize: bool = True) -> List[Path]:
    """``metric`` against a cost column (one point per setting, 95% CI bars) with its Pareto front."""
    if cost not in table or table[cost].isna().all():
        return []
    plt, (fig, ax) = _figure()
    x, y = list(table[cost]), list(table[metric])
    ax.errorbar(x, y, yerr=table.get(f"{metric}:ci"), fmt="o", capsize=3)
    ax.set_title(bars_caption(table, metric), fontsize=7)
    if min(x) > 0:
        ax.set_xscale("log")
    if len(x) > 1:
        idx = pareto_front(x, y, maximize)
        ax.plot([x[i] for i in idx], [y[i] for i in idx], "--", color="gray", label="Pareto front")
        ax.legend(fontsize=7)
    ax.set_xlabel(cost + " (log)" if min(x) > 0 else cost)
    ax.set_ylabel(metric)
    fig.canvas.draw()  # the transforms label_offsets reads
    labels = list(table["setting"])
    for xi, yi, label, dy in zip(x, y, labels, label_offsets(x, y, labels, ax)):
        ax.annotate(label, (xi, yi), fontsize=6, xytext=(3, dy), textcoords="offset points")
    return _save(plt, fig, out_dir / f"{metric.replace('/', '_')}_vs_{cost}")


def paper_vs_measured(table: pd.DataFrame, paper: Optional[Dict[str, Dict[str, Any]]], metric: str,
                      out_dir: Path) -> List[Path]:
    """The paper's figure (x) against the measured ``metric`` (y, mean ± bars) for every setting the paper
    reports: its ranking beside ours. Points in the paper's order from left to right rise when the
    order holds here. Nothing is drawn with fewer than 2 such settings."""
    rows = {k: v for k, v in (paper or {}).items() if k in set(table["setting"])}
    paper_metric = next((m for v in rows.values() for m in v if not m.startswith("params")), None)
    rows = {k: v for k, v in rows.items() if paper_metric in v}
    if len(rows) < 2:
        return []
    sub = table.set_index("setting").loc[list(rows)]
    plt, (fig, ax) = _figure()
    x = [rows[k][paper_metric] for k in rows]
    ax.errorbar(x, sub[metric], yerr=sub.get(f"{metric}:ci"), fmt="o", capsize=3)
    for label, xi, yi in zip(rows, x, sub[metric]):
        ax.annotate(label, (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel(f"paper: {paper_metric}")
    ax.set_ylabel(f"measured: {metric}")
    ax.set_title(bars_caption(table, metric), fontsize=7)
    return _save(plt, fig, out_dir / f"{metric.replace('/', '_')}_vs_paper")


def all_plots(table: pd.DataFrame, params: Sequence[str], metric: str, out_dir: Path,
              maximize: bool = True, paper: Optional[Dict[str, Dict[str, Any]]] = None) -> List[Path]:
    if table.empty or metric not in table:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    files = metric_vs_param(table, params, metric, out_dir) if params else []
    files += accuracy_vs_cost(table, metric, "trainable_params", out_dir, maximize)
    files += accuracy_vs_cost(table, metric, "train_time_s", out_dir, maximize)
    files += paper_vs_measured(table, paper, metric, out_dir)
    return files
