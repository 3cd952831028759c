"""The uncertainty of a study's figures: seed confidence intervals, paired differences, multiple comparisons.

Why these methods (a study has 3-5 seeds per setting):

* **CI of a mean over seeds: Student t with n-1 degrees of freedom.** Each seed
  is one independent training run; with so few of them a bootstrap over seeds has
  too few distinct resamples (10 for 3 seeds) and under-covers, while the t
  interval is exact when seed outcomes are roughly normal and only widens with
  small n, which is the honest direction.
* **Differences between settings: paired by seed.** The same seed gives two
  settings the same data order and the same draws for everything the setting does
  not change, so their outcomes are correlated; the t test on the per-seed
  differences removes that shared part and is the most powerful simple test at
  3-5 pairs. It needs at least 2 common seeds.
* **Many rows against one reference: Holm's step-down correction** (Holm 1979,
  "A simple sequentially rejective multiple test procedure"): it controls the
  chance of any false "different" across all rows like Bonferroni, and rejects at
  least as often.

Everything here works on ``{setting: {seed: value}}`` maps built by :func:`per_seed`.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import pandas as pd

LEVEL = 0.95
ALPHA = 0.05
CI_METHOD = "95% CI half-width over seeds (Student t, n-1 df)"
BOOTSTRAP_METHOD = "95% percentile interval's half-width of a bootstrap over the evaluation images (1,000 resamples)"
BOOTSTRAP_RESAMPLES = 1000
PAIRED_METHOD = "paired t over seeds (matched by seed), p Holm-corrected across rows"

#: {setting label: {metric or cost key: {seed: value}}}
PerSeed = Dict[str, Dict[str, Dict[int, float]]]


def finite(v) -> bool:
    """A real number (not bool, NaN or inf): the only values statistics are computed from."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def per_seed(df: pd.DataFrame, labels: Sequence[str], keys: Sequence[str]) -> PerSeed:
    """Every ``keys`` value of the COMPLETE trials, per setting ``labels[i]`` of row i and per seed."""
    out: PerSeed = {}
    for label, row in zip(labels, df.astype(object).to_dict("records")):
        if row.get("state") != "COMPLETE":
            continue
        values = out.setdefault(label, {})
        for key in keys:
            if finite(row.get(key)):
                values.setdefault(key, {})[int(row["seed"])] = float(row[key])
    return out


def t_quantile(df: int, level: float = LEVEL) -> float:
    from scipy.stats import t as student_t

    return float(student_t.ppf(0.5 + level / 2, df))


@dataclass(frozen=True)
class Estimate:
    """A mean over seeds and its CI half-width (NaN with fewer than 2 seeds)."""

    mean: float
    half_width: float
    n: int


def mean_ci(values: Sequence[float], level: float = LEVEL) -> Estimate:
    v = [float(x) for x in values if finite(x)]
    n = len(v)
    if n == 0:
        return Estimate(math.nan, math.nan, 0)
    mean = sum(v) / n
    if n < 2:
        return Estimate(mean, math.nan, n)
    sd = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1))
    return Estimate(mean, t_quantile(n - 1, level) * sd / math.sqrt(n), n)


@dataclass(frozen=True)
class Difference:
    """``row - reference`` over their common seeds: mean, CI half-width, two-sided p (NaN when n < 2)."""

    mean: float
    half_width: float
    p: float
    n: int

    def distinguishable(self, alpha: float = ALPHA) -> bool:
        return finite(self.p) and self.p < alpha


def paired_difference(row: Mapping[int, float], reference: Mapping[int, float],
                      level: float = LEVEL) -> Difference:
    """The paired t test of ``row - reference`` on the seeds both have."""
    from scipy.stats import t as student_t

    seeds = sorted(set(row) & set(reference))
    d = [row[s] - reference[s] for s in seeds]
    est = mean_ci(d, level)
    if est.n < 2:
        return Difference(est.mean, math.nan, math.nan, est.n)
    sd = math.sqrt(sum((x - est.mean) ** 2 for x in d) / (est.n - 1))
    if sd == 0.0:  # identical differences on every seed: certain, unless they are all zero
        return Difference(est.mean, 0.0, 1.0 if est.mean == 0.0 else 0.0, est.n)
    t = est.mean / (sd / math.sqrt(est.n))
    p = float(2 * student_t.sf(abs(t), est.n - 1))
    return Difference(est.mean, est.half_width, p, est.n)


def holm(pvalues: Sequence[float]) -> List[float]:
    """Holm-adjusted p-values (NaN stays NaN and does not count as a test)."""
    tested = sorted((p, i) for i, p in enumerate(pvalues) if finite(p))
    m = len(tested)
    adjusted = [math.nan] * len(pvalues)
    running = 0.0
    for rank, (p, i) in enumerate(tested):
        running = max(running, min(1.0, (m - rank) * p))  # step-down: adjusted p never decreases
        adjusted[i] = running
    return adjusted


def paired_t_power(effect: float, sd: float, n: int, alpha: float = ALPHA) -> float:
    """Power of the two-sided paired t test (n pairs, level ``alpha``) to detect a true mean
    difference ``effect`` when the per-seed differences have standard deviation ``sd``: the
    noncentral t with ``n - 1`` df and noncentrality ``effect * sqrt(n) / sd``."""
    from scipy.stats import nct

    crit = t_quantile(n - 1, 1 - alpha)
    nc = effect * math.sqrt(n) / sd
    return float(nct.sf(crit, n - 1, nc) + nct.cdf(-crit, n - 1, nc))


def minimum_detectable_difference(sd: float, n: int, alpha: float = ALPHA, power: float = 0.8) -> float:
    """The smallest true difference a paired t test over ``n`` seeds finds with probability
    ``power`` at level ``alpha``, when per-seed differences have standard deviation ``sd``."""
    from scipy.optimize import brentq

    if n < 2 or not finite(sd) or sd <= 0:
        return math.nan
    high = sd
    while paired_t_power(high, sd, n, alpha) < power:  # bracket the root without nct's far tail
        high *= 2
    return float(brentq(lambda d: paired_t_power(d, sd, n, alpha) - power, 0.0, high))


@dataclass(frozen=True)
class SdRatio:
    """``sd_a / sd_b`` with its confidence interval and the two-sided p of "the spreads are equal"."""

    ratio: float
    low: float
    high: float
    p: float


def sd_ratio(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> SdRatio:
    """Does one recipe's seed spread differ from another's? The F interval of the ratio of standard
    deviations (sample variances over (n-1) df each; normal outcomes). With 5-6 seeds a side it is
    wide (a ratio of 0.5 is about the smallest it can tell from 1), which is the point of printing it.
    The F distribution assumes independent samples. Settings run on the same seeds are paired, and
    for normal pairs with correlation rho the two sample variances covary by 2 rho^2 sigma_a^2 sigma_b^2
    / (n - 1), positive whatever rho's sign: the ratio varies less than F says, so the interval and
    p are conservative there, never optimistic."""
    from scipy.stats import f as f_dist

    a, b = [float(x) for x in a if finite(x)], [float(x) for x in b if finite(x)]
    if len(a) < 2 or len(b) < 2:
        return SdRatio(math.nan, math.nan, math.nan, math.nan)
    var_a, var_b = statistics.variance(a), statistics.variance(b)
    if var_b == 0:
        return SdRatio(math.nan, math.nan, math.nan, math.nan)
    f = var_a / var_b
    dfa, dfb = len(a) - 1, len(b) - 1
    upper_q, lower_q = f_dist.ppf(0.5 + level / 2, dfa, dfb), f_dist.ppf(0.5 - level / 2, dfa, dfb)
    p = 2 * min(f_dist.cdf(f, dfa, dfb), f_dist.sf(f, dfa, dfb))
    return SdRatio(math.sqrt(f), math.sqrt(f / upper_q), math.sqrt(f / lower_q), min(1.0, float(p)))


@dataclass(frozen=True)
class SeedSplit:
    """How much of a study's seed noise a paired comparison removes (two-way ANOVA, settings x seeds,
    one trial per cell). ``pooled_sd``: the seed sd within a setting, pooled; ``shared_sd``: the part a
    seed does alike in every setting (its data order and flips; its head's initial weights only with
    ``model.own_head_stream``, ovbench/models/seeding.py); ``interaction_sd``:
    the rest, which is what a paired difference sees (its sd is sqrt(2) x this). ``f``, ``p``: the
    test that seeds have no shared effect. ``setting_sd``, ``setting_p``: the same for the settings
    (the sd of their means beyond what the interaction explains, and its F test): the size of a
    study's effects, or, where the settings are themselves random draws (ablations/seed_parts.yaml's
    image orders), a variance component like the seeds'."""

    seeds: int
    settings: int
    pooled_sd: float
    shared_sd: float
    interaction_sd: float
    f: float
    p: float
    setting_sd: float = math.nan
    setting_p: float = math.nan


def seed_split(values: Mapping[str, Mapping[int, float]]) -> SeedSplit:
    """:class:`SeedSplit` of ``{setting: {seed: value}}`` over the seeds every setting has.

    The shared variance is the ANOVA estimate (MS_seed - MS_interaction) / settings, floored at 0; with
    3-5 seeds it is uncertain by a factor of 2 or more, so read it with its F test."""
    cells = {k: {s: float(v) for s, v in seeds.items() if finite(v)} for k, seeds in values.items()}
    common = sorted(set.intersection(*(set(c) for c in cells.values()))) if cells else []
    k, n = len(cells), len(common)
    if k < 2 or n < 2:
        return SeedSplit(n, k, math.nan, math.nan, math.nan, math.nan, math.nan)
    x = [[cells[label][s] for label in cells] for s in common]  # [seeds][settings]
    grand = sum(map(sum, x)) / (n * k)
    seed_means = [sum(row) / k for row in x]
    setting_means = [sum(row[j] for row in x) / n for j in range(k)]
    within = sum((x[i][j] - setting_means[j]) ** 2 for i in range(n) for j in range(k))
    ss_seed = k * sum((m - grand) ** 2 for m in seed_means)
    ms_seed, ms_inter = ss_seed / (n - 1), (within - ss_seed) / ((n - 1) * (k - 1))
    ms_setting = n * sum((m - grand) ** 2 for m in setting_means) / (k - 1)
    f, p = _f_test(ms_seed, ms_inter, n - 1, (n - 1) * (k - 1))
    _, setting_p = _f_test(ms_setting, ms_inter, k - 1, (n - 1) * (k - 1))
    return SeedSplit(n, k, math.sqrt(within / (k * (n - 1))), math.sqrt(max(ms_seed - ms_inter, 0.0) / k),
                     math.sqrt(max(ms_inter, 0.0)), f, p,
                     math.sqrt(max(ms_setting - ms_inter, 0.0) / n), setting_p)


def _f_test(ms_effect: float, ms_inter: float, df_effect: int, df_inter: int) -> Tuple[float, float]:
    """F and p of "this effect is nothing" against the interaction's mean square."""
    from scipy.stats import f as f_dist

    if ms_inter > 0:
        f = ms_effect / ms_inter
        return f, float(f_dist.sf(f, df_effect, df_inter))
    # exactly additive: the effect is real if it moves at all; no test if nothing moves
    return (math.inf, 0.0) if ms_effect > 0 else (math.nan, math.nan)


def best_group(values: Mapping[str, Mapping[int, float]], maximize: bool, alpha: float = ALPHA) -> Dict[str, str]:
    """Which settings are the best, and which are not distinguishable from it.

    Returns ``{setting: "best" | "tied"}`` for the marked settings: every setting whose mean equals
    the best mean is ``best``; a setting is ``tied`` when its paired test against a best one is
    not significant (``p >= alpha``, uncorrected: a mark of caution, not a claim). Settings with
    fewer than 2 seeds in common with the best are never ``tied``.
    """
    means = {k: mean_ci(list(v.values())).mean for k, v in values.items()}
    means = {k: m for k, m in means.items() if finite(m)}
    if not means:
        return {}
    top = max(means.values()) if maximize else min(means.values())
    marks = {k: "best" for k, m in means.items() if m == top}
    leader = next(iter(marks))
    for k in means:
        if k not in marks:
            diff = paired_difference(values[k], values[leader])
            if diff.n >= 2 and not diff.distinguishable(alpha):
                marks[k] = "tied"
    return marks


def image_bootstrap_half_width(work_dir: Optional[str], metric: str, level: float = LEVEL) -> float:
    """Half-width of the percentile interval of ``metric`` (``<set>/<key>``) over image resamples of the
    trial in ``work_dir`` (its ``image_stats.npz``); NaN where the trial kept no statistics for it.

    Efron's percentile bootstrap: with one seed this is the only uncertainty a table can state, and it
    covers only the choice of evaluation images (:mod:`ovbench.evaluation.image_stats`).
    """
    import numpy as np

    from ovbench.evaluation.image_stats import RESAMPLABLE, STATS_FILE, load_image_stats

    set_name, _, key = str(metric).partition("/")
    kind = next((k for k, keys in RESAMPLABLE.items() if key in keys), None)
    path = Path(str(work_dir)) / STATS_FILE if work_dir else None
    if kind is None or path is None or not path.is_file():
        return math.nan
    found = load_image_stats(path).get(set_name, {}).get(kind)
    if found is None or found.num_images < 2:
        return math.nan
    draws = found.bootstrap(key, n=BOOTSTRAP_RESAMPLES)
    draws = draws[np.isfinite(draws)]
    if draws.size < BOOTSTRAP_RESAMPLES // 2:
        return math.nan
    lo, hi = np.percentile(draws, [50 * (1 - level), 50 * (1 + level)])
    return float(hi - lo) / 2


def fmt_pm(est_mean: float, half: float, digits: int = 2, pm: str = " ± ") -> str:
    """``12.34 ± 0.56`` (no ± part when the half-width is unknown)."""
    if not finite(est_mean):
        return "-"
    return f"{est_mean:.{digits}f}" + (f"{pm}{half:.{digits}f}" if finite(half) else "")


def fmt_p(p: Optional[float]) -> str:
    """``p=0.03``; three decimals below 0.01, and as many as it takes not to print the threshold
    itself: 0.0497 and 0.0503 would both read "p=0.05", one "beats", the other "not distinguishable"."""
    if p is None or not finite(p):
        return "-"
    if p < 0.001:
        return "p<0.001"
    digits = 3 if p < 0.01 else 2
    while round(p, digits) == ALPHA and digits < 6:
        digits += 1
    return f"p={p:.{digits}f}"
