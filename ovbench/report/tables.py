"""Tables a paper prints: one row per setting, mean ± std over seeds, best marked, cost columns."""
from __future__ import annotations

import math
from typing import Any, Dict, Optional, Sequence

import pandas as pd

from ovbench.report.frame import COST_COLS, metric_columns

DEFAULT_METRICS = ("mIoU", "mIoU_seen", "mIoU_unseen", "hIoU", "PQ")
TABLE_COST = ("trainable_params", "trainable_params_free", "train_time_s", "s_per_iter", "peak_mem_mb")


def short_names(params: Sequence[str]) -> Dict[str, str]:
    """``model.decode_head.channels`` -> ``channels`` (longer suffixes where two keys would clash)."""
    out = {}
    for p in params:
        parts = p.split(".")
        n = 1
        while n < len(parts) and sum(q.split(".")[-n:] == parts[-n:] for q in params) > 1:
            n += 1
        out[p] = ".".join(parts[-n:])
    return out


def setting_label(row: Any, params: Sequence[str]) -> str:
    """``channels=8, lr=0.01``: the row label of a setting (and the key of the paper's figures)."""
    names = short_names(params)
    return ", ".join(f"{names[p]}={row[p]}" for p in params) or "default"


def summarize(df: pd.DataFrame, params: Sequence[str], metrics: Optional[Sequence[str]] = None) -> pd.DataFrame:
    """Group COMPLETE trials by setting: ``<metric>`` mean, ``<metric>:std``, ``n_seeds``, cost means."""
    done = df[df["state"] == "COMPLETE"].copy()
    if done.empty:
        return pd.DataFrame()
    metrics = list(metrics or [c for c in metric_columns(done) if c.split("/")[-1] in DEFAULT_METRICS])
    cost = [c for c in COST_COLS if c in done.columns]
    for p in params:  # lists are unhashable; group by their text
        done[p] = done[p].map(lambda v: str(v) if isinstance(v, (list, dict)) else v)
    keys = list(params) or ["seed"]
    grouped = done.groupby(keys, sort=False, dropna=False)
    out = grouped[metrics + cost].mean()
    std = grouped[metrics].std(ddof=1).add_suffix(":std")
    table = pd.concat([out, std], axis=1).reset_index()
    table["n_seeds"] = grouped.size().values
    for p in params:  # NaN-free integral floats (pandas upcasts on concat) print as ints again
        col = pd.to_numeric(table[p], errors="coerce")
        if col.notna().all() and (col == col.round()).all() and not pd.api.types.is_bool_dtype(table[p]):
            table[p] = col.astype("int64")
        elif col.notna().all():
            table[p] = col
    labels = [setting_label(r, params) for r in table[list(params)].astype(object).to_dict("records")]
    table.insert(0, "setting", labels if params else "default")
    return table


def fmt_num(v: Any, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if isinstance(v, (int, float)) and abs(v) >= 1e4:  # counts (parameters, FLOPs): 74.8k, 1.23M
        return f"{v / 1e6:.3g}M" if abs(v) >= 1e6 else f"{v / 1e3:.3g}k"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def render(table: pd.DataFrame, metrics: Sequence[str], fmt: str, paper: Optional[Dict[str, Any]] = None) -> str:
    """The table as ``md`` | ``latex`` | ``html`` | ``csv``; the best mean of each metric is marked."""
    if table.empty:
        return "(no completed trials)\n"
    if fmt == "csv":
        return table.to_csv(index=False)
    best = {m: table[m].max() for m in metrics if m in table}
    mark = {"md": "**{}**", "latex": "\\textbf{{{}}}", "html": "<b>{}</b>"}[fmt]
    rows = []
    for _, r in table.iterrows():
        row = {"setting": r["setting"]}
        for m in metrics:
            if m not in table:
                continue
            cell = fmt_num(r[m])
            sd = r.get(f"{m}:std")
            if r["n_seeds"] > 1 and sd is not None and not (isinstance(sd, float) and math.isnan(sd)):
                cell += f" ± {sd:.2f}" if fmt != "latex" else f" $\\pm$ {sd:.2f}"
            row[m] = mark.format(cell) if r[m] == best[m] and not math.isnan(best[m]) else cell
        paper_row = (paper or {}).get(r["setting"]) or {}
        for m, v in paper_row.items():
            row[f"paper {m}"] = fmt_num(v)
        for c in TABLE_COST:
            if c in table:
                row[c] = fmt_num(r[c], 3 if c == "s_per_iter" else 1)
        row["seeds"] = int(r["n_seeds"])
        rows.append(row)
    out = pd.DataFrame(rows).astype(object).fillna("-")  # paper figures exist for some rows only
    if fmt == "md":
        return _markdown(out)
    if fmt == "latex":
        body = out.to_latex(index=False, escape=False) if hasattr(out, "to_latex") else out.to_string()
        return body.replace("_", "\\_")
    return out.to_html(index=False, escape=False)


def _markdown(df: pd.DataFrame) -> str:
    """GitHub markdown without the optional ``tabulate`` dependency."""
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(str(r[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def failures(df: pd.DataFrame, params: Sequence[str]) -> str:
    """One line per failed trial (setting, seed, reason) so a report never hides a failure."""
    bad = df[df["state"] == "FAIL"]
    return "".join(f"- trial {int(r['number'])} ({setting_label(r, params)}, seed {r['seed']}): {r['error']}\n"
                   for r in bad.astype(object).to_dict("records"))
