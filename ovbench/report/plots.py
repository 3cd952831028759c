"""Plots (PNG + SVG): metric vs each swept parameter (error bars over seeds), accuracy vs trainable
parameters with the Pareto front, accuracy vs training time."""
from __future__ import annotations

from pathlib import Path
from typing import List, Sequence

import pandas as pd

from ovbench.report.tables import short_names


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt, plt.subplots(figsize=(5, 3.6))


def _save(plt, fig, path: Path) -> List[Path]:
    fig.tight_layout()
    out = []
    for ext in ("png", "svg"):
        p = path.with_suffix(f".{ext}")
        fig.savefig(p, dpi=120)
        out.append(p)
    plt.close(fig)
    return out


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def metric_vs_param(table: pd.DataFrame, params: Sequence[str], metric: str, out_dir: Path) -> List[Path]:
    """One figure per swept parameter: mean ± std of ``metric``, one line per setting of the others."""
    files: List[Path] = []
    names = short_names(params)
    for p in params:
        plt, (fig, ax) = _figure()
        others = [q for q in params if q != p]
        groups = table.groupby(others, sort=False, dropna=False) if others else [((), table)]
        for key, g in groups:
            g = g.sort_values(p)
            x = g[p] if _numeric(g[p]) else g[p].astype(str)
            key = key if isinstance(key, tuple) else (key,)
            label = ", ".join(f"{names[q]}={v}" for q, v in zip(others, key)) or metric
            ax.errorbar(x, g[metric], yerr=g.get(f"{metric}:std"), marker="o", capsize=3, label=label)
        ax.set_xlabel(names[p])
        ax.set_ylabel(metric)
        if _numeric(table[p]) and table[p].min() > 0 and table[p].max() / table[p].min() >= 10:
            ax.set_xscale("log")
        ax.legend(fontsize=7)
        files += _save(plt, fig, out_dir / f"{metric.replace('/', '_')}_vs_{names[p]}")
    return files


def pareto_front(x: Sequence[float], y: Sequence[float]) -> List[int]:
    """Indices of points no other point beats (fewer-or-equal x and higher-or-equal y, one strictly)."""
    idx = []
    for i, (xi, yi) in enumerate(zip(x, y)):
        dominated = any((xj <= xi and yj >= yi) and (xj < xi or yj > yi) for xj, yj in zip(x, y))
        if not dominated:
            idx.append(i)
    return sorted(idx, key=lambda i: x[i])


def accuracy_vs_cost(table: pd.DataFrame, metric: str, cost: str, out_dir: Path, front: bool) -> List[Path]:
    """Scatter of ``metric`` against a cost column (one point per setting), Pareto front if asked."""
    if cost not in table or table[cost].isna().all():
        return []
    plt, (fig, ax) = _figure()
    x, y = list(table[cost]), list(table[metric])
    ax.errorbar(x, y, yerr=table.get(f"{metric}:std"), fmt="o", capsize=3)
    for xi, yi, label in zip(x, y, table["setting"]):
        ax.annotate(label, (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points")
    if front and len(x) > 1:
        idx = pareto_front(x, y)
        ax.plot([x[i] for i in idx], [y[i] for i in idx], "--", color="gray", label="Pareto front")
        ax.legend(fontsize=7)
    ax.set_xlabel(cost)
    ax.set_ylabel(metric)
    return _save(plt, fig, out_dir / f"{metric.replace('/', '_')}_vs_{cost}")


def all_plots(table: pd.DataFrame, params: Sequence[str], metric: str, out_dir: Path) -> List[Path]:
    if table.empty or metric not in table:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    files = metric_vs_param(table, params, metric, out_dir) if params else []
    files += accuracy_vs_cost(table, metric, "trainable_params", out_dir, front=True)
    files += accuracy_vs_cost(table, metric, "train_time_s", out_dir, front=False)
    return files
