"""``summary.md``: a study's answer to its own question, in sentences generated from the numbers.

A table invites the reader to compare cells by eye; these sentences say which
comparisons the seeds support. Every sentence comes from a paired test over seeds
(:mod:`ovbench.report.stats`), never from two means alone: "q=128 beats q=16 by
11.2 ± 2.1 (p<0.001)", "q=32 and q=64 are not distinguishable", and, where the
ablation file gives the paper's figures, whether the paper's order holds here.
"""
from __future__ import annotations

import itertools
import math
from typing import Any, Dict, List, Optional, Sequence, Tuple

import pandas as pd

from ovbench.report import stats

Objective = Tuple[str, str]  # (metric, "maximize" | "minimize")


def _values(df: pd.DataFrame, labels: Sequence[str], metric: str) -> Dict[str, Dict[int, float]]:
    seeds = stats.per_seed(df, labels, [metric])
    return {lab: v.get(metric, {}) for lab, v in seeds.items()}


def _better(diff: stats.Difference, maximize: bool) -> bool:
    return (diff.mean > 0) == maximize


def compare_sentence(a: str, b: str, diff: stats.Difference, metric: str, maximize: bool,
                     p: Optional[float] = None, correction: str = "") -> str:
    """One sentence on ``a - b`` (``p`` overrides the difference's own p, e.g. Holm-adjusted)."""
    p = diff.p if p is None else p
    amount = stats.fmt_pm(abs(diff.mean), diff.half_width)
    if diff.n < 2:
        return f"{a} vs {b}: {diff.mean:+.2f} {metric} on {diff.n} common seed(s): not tested."
    how = f"{stats.fmt_p(p)}{correction}, {diff.n} seeds"
    if p < stats.ALPHA:
        winner, loser = (a, b) if _better(diff, maximize) else (b, a)
        return f"{winner} beats {loser} by {amount} {metric} ({how})."
    return (f"{a} and {b} are not distinguishable on {metric}: difference {diff.mean:+.2f} ± "
            f"{diff.half_width:.2f} ({how}).")


def reference_sentences(values: Dict[str, Dict[int, float]], reference: str, metric: str,
                        maximize: bool) -> List[str]:
    """Every setting against the reference, Holm-corrected over those comparisons."""
    others = [k for k in values if k != reference]
    diffs = [stats.paired_difference(values[k], values[reference]) for k in others]
    adjusted = stats.holm([d.p for d in diffs])
    return [compare_sentence(k, reference, d, metric, maximize, p, " Holm-corrected")
            for k, d, p in zip(others, diffs, adjusted)]


def _mean(seeds: Dict[int, float]) -> float:
    return stats.mean_ci(list(seeds.values())).mean


def ranking_text(values: Dict[str, Dict[int, float]], maximize: bool) -> str:
    """``a > b = c``: settings with the same mean are joined by ``=``, so a tie is not read as an order."""
    ranked = sorted(values, key=lambda k: _mean(values[k]), reverse=maximize)
    text = ranked[0]
    for prev, k in zip(ranked, ranked[1:]):
        text += (" = " if _mean(values[prev]) == _mean(values[k]) else " > ") + k
    return text


def constant_sentence(values: Dict[str, Dict[int, float]], metric: str) -> Optional[str]:
    """The one sentence for a metric no setting moves (every setting, every seed, one value): e.g. an
    oracle mode whose figure does not depend on what is being ablated. Tests on it say nothing."""
    seen = {v for seeds in values.values() for v in seeds.values()}
    if len(values) < 2 or len(seen) != 1:
        return None
    return f"Every setting gives {next(iter(seen)):.2f} {metric} on every seed: no setting moves it."


def best_sentences(values: Dict[str, Dict[int, float]], metric: str, maximize: bool,
                   compare: bool = True, reference: Optional[str] = None) -> List[str]:
    """The best setting and the ranking by mean; with ``compare``, the best against every other
    setting, uncorrected (said so), except the ``reference``. Without it (the best is the reference,
    whose Holm-corrected comparisons follow) the same pairs would be said twice, at two p-values
    that may disagree; the best against the reference is likewise said once, among those."""
    marks = stats.best_group(values, maximize)
    if not marks:
        return []
    best = [k for k, m in marks.items() if m == "best"]
    est = stats.mean_ci(list(values[best[0]].values()))
    text = [f"Best on {metric}: {', '.join(best)} with {stats.fmt_pm(est.mean, est.half_width)} "
            f"({est.n} seed{'s' if est.n != 1 else ''}); measured ranking by mean: {ranking_text(values, maximize)}."]
    for k in values:
        if compare and k not in best and k != reference:
            text.append(compare_sentence(best[0], k, stats.paired_difference(values[best[0]], values[k]),
                                         metric, maximize, correction=" uncorrected"))
    return text


def paper_order_sentences(values: Dict[str, Dict[int, float]], paper: Dict[str, Dict[str, Any]],
                          metric: str, maximize: bool) -> List[str]:
    """For each pair of settings the paper reports, does its order hold here?

    A study tests every pair the paper orders (10 for 5 rows), so at p < 0.05 each, about one in
    two studies would show a false "holds" or "reversed" by chance alone. The verdict therefore
    follows the Holm-corrected p over the study's paper orders (as the reference comparisons do
    over rows); the uncorrected p is printed beside it."""
    rows = {k: v for k, v in paper.items() if k in values}
    if len(rows) < 2:
        return []
    paper_metric = next((m for m in next(iter(rows.values())) if not m.startswith("params")), None)
    if paper_metric is None:
        return []
    ranked = sorted(rows, key=lambda k: rows[k].get(paper_metric, float("-inf")), reverse=True)
    orders = []
    for a, b in itertools.combinations(rows, 2):
        pa, pb = rows[a].get(paper_metric), rows[b].get(paper_metric)
        if pa is None or pb is None or pa == pb:
            continue
        hi, lo = (a, b) if pa > pb else (b, a)
        orders.append((hi, lo, max(pa, pb), min(pa, pb), stats.paired_difference(values[hi], values[lo])))
    adjusted = stats.holm([d.p if d.n >= 2 else math.nan for *_, d in orders])
    tested = sum(stats.finite(p) for p in adjusted)
    out = [f"The paper's ranking by {paper_metric}: {' > '.join(ranked)}."]
    for (hi, lo, p_hi, p_lo, diff), p_holm in zip(orders, adjusted):
        claim = f"The paper's order {hi} > {lo} ({paper_metric} {p_hi} vs {p_lo})"
        if diff.n < 2:
            out.append(f"{claim} cannot be tested (one seed).")
            continue
        if not p_holm < stats.ALPHA:
            verdict = "is not resolved here (not distinguishable)"
        else:
            verdict = "holds here" if _better(diff, maximize) else "is reversed here"
        how = (f"{stats.fmt_p(diff.p)}, the paper's only order" if tested == 1 else
               f"{stats.fmt_p(diff.p)} uncorrected, {stats.fmt_p(p_holm)} Holm-corrected over the paper's {tested} orders")
        out.append(f"{claim} {verdict}: {hi} − {lo} = {stats.fmt_pm(diff.mean, diff.half_width)} {metric} "
                   f"({how}, {diff.n} seeds).")
    return out


def summary_markdown(header: str, df: pd.DataFrame, labels: Sequence[str], objective: Objective,
                     reference: Optional[str], paper: Optional[Dict[str, Any]]) -> str:
    """The whole ``summary.md``: provenance, then the study's answer on each set's objective metric."""
    name = objective[0].split("/")[-1]
    maximize = objective[1] != "minimize"
    metrics = [objective[0]] + sorted({c for c in df.columns if "/" in c and c.split("/")[-1] == name} - {objective[0]})
    lines = [header, ""]
    if df[df["state"] == "COMPLETE"]["seed"].nunique() < 2:
        lines.append("**One seed per setting: nothing below is tested; read no ranking from it.**\n")
    for metric in metrics:
        values = _values(df, labels, metric)
        if not values:
            continue
        lines.append(f"## {metric}\n")
        constant = constant_sentence(values, metric)
        if constant:
            lines += [f"- {constant}", ""]
            continue
        against_reference = bool(reference) and reference in values
        best_is_reference = against_reference and stats.best_group(values, maximize).get(reference) == "best"
        lines += [f"- {s}" for s in best_sentences(values, metric, maximize, not best_is_reference,
                                                   reference if against_reference else None)] + [""]
        if against_reference:
            lines += [f"Against the reference {reference} ({stats.PAIRED_METHOD}):", ""]
            lines += [f"- {s}" for s in reference_sentences(values, reference, metric, maximize)] + [""]
        if paper and metric == objective[0]:
            lines += [f"- {s}" for s in paper_order_sentences(values, paper, metric, maximize)] + [""]
    return "\n".join(lines)
