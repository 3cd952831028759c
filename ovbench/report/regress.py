"""``ovbench regress``: run ``ablations/ci.yaml`` over several seeds, compare it with a committed baseline.

The baseline (``reports/ci/baseline.json``) holds, per setting and per seed, every
metric and cost of the CI study, and the rule's two constants. The rule (also in
docs/sweeps.md, and printed with every diff table):

* **accuracy metrics** (``<set>/<metric>``): the same seed gives different numbers on
  another CPU or thread count (floating-point order changes the training path), so
  a metric is judged by its mean over seeds against the spread the baseline's seeds
  show. ``s`` is the seed standard deviation of that metric pooled over every
  setting of the baseline (each setting's seeds around their own mean; ``df`` =
  seeds - settings), because 3 seeds per setting alone give a poor estimate. A
  drop of the mean is a regression when it exceeds

      tol = max(floor, t * s * sqrt(1/n_baseline + 1/n_current))

  where ``t`` is the one-sided Student-t quantile with ``df`` degrees of freedom at
  ``alpha / m`` (Bonferroni over the ``m`` metric comparisons). Under the noise
  model, noise alone trips the whole check with probability at most ``alpha``
  (1%). A rise beyond ``tol`` is reported as ``better`` (update the baseline) and
  does not fail;
* **exact** quantities (parameter counts, FLOPs): any relative change above ``rel`` fails;
* **times and memory**: informational only (shared CI machines make them noisy);
* a setting missing from the run (its trials failed) fails.

Exit code 0 = no regression, 1 = regression, 2 = the run could not be compared.
``--update-baseline`` rewrites the file from this run (keeping its constants).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import pandas as pd

from ovbench.report import stats, tables
from ovbench.report.frame import COST_COLS, distinct_values, open_for_report, study_frame, swept_params

DEFAULT_TOLERANCES: Dict[str, Dict[str, Any]] = {
    "metrics": {"alpha": 0.01, "floor": 1.0},
    "exact": {"rel": 0.001, "keys": ["trainable_params", "trainable_params_free", "total_params", "flops"]},
}
UPDATE_HINT = ("if the change is intended, rewrite the baseline with `ovbench regress --update-baseline` "
               "(about 4 minutes on 2 cores) and commit reports/ci/baseline.json with the change")

# {setting: {key: [value per seed, in seed order]}}
SeedValues = Dict[str, Dict[str, List[float]]]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ablation", default="ablations/ci.yaml", help="the CI study (default: ablations/ci.yaml)")
    parser.add_argument("--baseline", default="reports/ci/baseline.json", help="committed baseline file")
    parser.add_argument("--work-dir", default="work_dirs/regress", help="where the CI study runs")
    parser.add_argument("--update-baseline", action="store_true", help="rewrite the baseline from this run")
    parser.add_argument("--no-run", action="store_true", help="compare the study already in --work-dir")
    parser.add_argument("--workers", type=int, help="parallel trials (default: the file's)")


def seed_values(df: pd.DataFrame, params: Sequence[str]) -> SeedValues:
    """Every metric and cost of the COMPLETE trials, per setting, one value per seed (seed order)."""
    done = df[df["state"] == "COMPLETE"]
    keys = [c for c in done.columns if "/" in c or c in COST_COLS]
    per = stats.per_seed(done, tables.trial_labels(done, params), keys)
    return {label: {k: [v[s] for s in sorted(v)] for k, v in values.items()} for label, values in per.items()}


@dataclass
class Spread:
    """The pooled seed spread of one metric in the baseline, and the tolerance it implies."""

    std: float
    df: int
    t: float  # the one-sided t quantile the tolerance uses
    n_tests: int  # metric comparisons the level is shared among (Bonferroni)

    def tolerance(self, n_base: int, n_cur: int, floor: float) -> float:
        return max(floor, self.t * self.std * math.sqrt(1.0 / n_base + 1.0 / n_cur))


def pooled_spreads(settings: Dict[str, Dict[str, Any]], alpha: float) -> Dict[str, Spread]:
    """Per accuracy metric: the seed std pooled over the baseline's settings, and the Bonferroni t."""
    from scipy.stats import t as student_t

    sums: Dict[str, List[float]] = {}
    for vals in settings.values():
        for key, rec in vals.items():
            v = rec["values"]
            if "/" not in key or len(v) < 2:
                continue
            mean = sum(v) / len(v)
            acc = sums.setdefault(key, [0.0, 0])
            acc[0] += sum((x - mean) ** 2 for x in v)
            acc[1] += len(v) - 1
    n_tests = sum(1 for vals in settings.values() for key in vals if key in sums)
    return {key: Spread(std=math.sqrt(ss / df), df=df, t=float(student_t.ppf(1.0 - alpha / n_tests, df)),
                        n_tests=n_tests) for key, (ss, df) in sums.items()}


def compare(baseline: Dict[str, Any], current: SeedValues) -> List[Dict[str, Any]]:
    """One row per (setting, key): seeds, baseline and current means, delta, tolerance and status."""
    tol = {**DEFAULT_TOLERANCES, **(baseline.get("tolerances") or {})}
    spreads = pooled_spreads(baseline["settings"], float(tol["metrics"]["alpha"]))
    exact = set(tol["exact"]["keys"])
    rows = []
    for setting, base_vals in baseline["settings"].items():
        cur = current.get(setting)
        if cur is None:
            rows.append(dict(setting=setting, key="(trials)", seeds="", baseline="ok", current="missing",
                             delta="", tol="", status="REGRESSION"))
            continue
        for key, rec in base_vals.items():
            rows.append(_judge(setting, key, rec["values"], cur.get(key) or [], tol, spreads.get(key), exact))
    return rows


def _judge(setting: str, key: str, base: List[float], cur: List[float], tol: Dict[str, Any],
           spread: Optional[Spread], exact: set) -> Dict[str, Any]:
    b = sum(base) / len(base)
    row = dict(setting=setting, key=key, seeds=f"{len(base)}/{len(cur)}", baseline=b, current=None,
               delta=None, tol="", status="ok")
    if not cur:
        row["status"] = "REGRESSION"
        return row
    c = sum(cur) / len(cur)
    row.update(current=c, delta=c - b)
    if "/" in key:
        limit = spread.tolerance(len(base), len(cur), float(tol["metrics"]["floor"])) if spread else \
            float(tol["metrics"]["floor"])
        row["tol"] = f"-{limit:.2f}"
        if c < b - limit:
            row["status"] = "REGRESSION"
        elif c > b + limit:
            row["status"] = "better"
    elif key in exact:
        rel = float(tol["exact"]["rel"])
        row["tol"] = f"±{rel:.1%}"
        if abs(c - b) > rel * max(abs(b), 1e-12):
            row["status"] = "REGRESSION"
    else:
        row["tol"] = "info"
    return row


def rule_text(baseline: Dict[str, Any]) -> str:
    """Where every accuracy tolerance comes from: the pooled spread, its df and the t quantile."""
    tol = {**DEFAULT_TOLERANCES, **(baseline.get("tolerances") or {})}
    alpha, floor = float(tol["metrics"]["alpha"]), float(tol["metrics"]["floor"])
    spreads = pooled_spreads(baseline["settings"], alpha)
    n_tests = next(iter(spreads.values())).n_tests if spreads else 0
    lines = [f"rule: a metric regresses when its mean over seeds drops by more than "
             f"tol = max({floor:g}, t * s * sqrt(1/n_base + 1/n_cur)); s = the baseline's seed std pooled "
             f"over its settings; t = one-sided Student t at {alpha:g} / {n_tests} comparisons "
             f"(Bonferroni). Exact: parameters and FLOPs within ±{float(tol['exact']['rel']):.1%}. Times: info."]
    for key, sp in sorted(spreads.items()):
        lines.append(f"  {key:<22} s = {sp.std:.2f} (df {sp.df}), t = {sp.t:.2f}")
    return "\n".join(lines)


def diff_table(rows: List[Dict[str, Any]], only_changed: bool = False) -> str:
    def f(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else ("" if v is None else str(v))

    shown = [r for r in rows if not only_changed or r["status"] != "ok"]
    cols = ["setting", "key", "seeds", "baseline", "current", "delta", "tol", "status"]
    widths = {c: max([len(c)] + [len(f(r[c])) for r in shown]) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["  ".join(f(r[c]).ljust(widths[c]) for c in cols) for r in shown]
    return "\n".join(lines)


def failure_text(bad: List[Dict[str, Any]]) -> str:
    """One sentence per regression: which metric, by how much, against which tolerance."""
    lines = []
    for r in bad:
        if r["key"] == "(trials)" or r["current"] is None:
            lines.append(f"REGRESSION {r['setting']}: {r['key']} missing from this run (its trials failed?)")
        elif r["tol"].startswith("-"):
            lines.append(f"REGRESSION {r['setting']}: {r['key']} fell {-r['delta']:.2f} points "
                         f"({r['baseline']:.2f} -> {r['current']:.2f}, mean of seeds {r['seeds']}), "
                         f"beyond the tolerance {r['tol'][1:]}")
        else:
            lines.append(f"REGRESSION {r['setting']}: {r['key']} changed {r['baseline']:.6g} -> "
                         f"{r['current']:.6g}, beyond {r['tol']}")
    return "\n".join(lines + [UPDATE_HINT])


def run_ablation(args: argparse.Namespace) -> None:
    """Run the CI study afresh (``--rerun``: older trials stay as history, the comparison uses this run)."""
    from ovbench.sweep import executor as ex
    from ovbench.sweep.run import prepare

    ns = argparse.Namespace(ablation=args.ablation, storage=None, work_dir=args.work_dir, workers=args.workers,
                            executor=None, rerun=True, new_study=True, heartbeat=10.0, grace=60.0,
                            no_progress=False)
    spec, opts = prepare(ns)
    ex.run_spec(spec, opts)


def kept_tolerances(old: Dict[str, Any]) -> Dict[str, Any]:
    """The old file's constants where they have today's form (a reviewer may have tuned them), else defaults."""
    return {k: old[k] if isinstance(old.get(k), dict) and set(old[k]) == set(v) else v
            for k, v in DEFAULT_TOLERANCES.items()}


def write_baseline(path: Path, args: argparse.Namespace, spec: Any, df: pd.DataFrame, current: SeedValues) -> None:
    old = json.loads(path.read_text()) if path.is_file() else {}
    data = {"ablation": args.ablation, "spec_hash": spec.content_hash, "seeds": list(spec.seeds),
            "tolerances": kept_tolerances(old.get("tolerances") or {}),
            "settings": {s: {k: {"mean": round(sum(v) / len(v), 6), "values": v} for k, v in vals.items()}
                         for s, vals in current.items()},
            "device": distinct_values(df, "device")}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


def load_baseline(path: Path, spec: Any, ablation: str) -> Any:
    """The baseline, or the reason it cannot be compared (a string)."""
    if not path.is_file():
        return f"no baseline at {path}; create it with `ovbench regress --update-baseline`"
    baseline = json.loads(path.read_text())
    if baseline.get("spec_hash") not in (None, spec.content_hash):
        return (f"{ablation} changed since the baseline was made (hash {baseline.get('spec_hash')} vs "
                f"{spec.content_hash}); regenerate it with `ovbench regress --update-baseline`")
    one_seed = [s for s, vals in baseline.get("settings", {}).items()
                if not all(isinstance(r, dict) and len(r.get("values", [])) >= 2 for r in vals.values())]
    if one_seed:
        return (f"{path}: settings {one_seed} have fewer than 2 seeds, so the baseline states no spread to "
                f"judge noise by; give {ablation} at least 3 seeds and run `ovbench regress --update-baseline`")
    return baseline


def run(args: argparse.Namespace) -> int:
    from ovbench.sweep.spec import load_spec
    from ovbench.sweep.study import StorageError, default_storage_url, study_name_for

    start = time.time()
    if not args.no_run:
        run_ablation(args)
    spec = load_spec(args.ablation)
    url = default_storage_url(Path(args.work_dir).resolve())
    study = None
    for name in (study_name_for(spec, True), spec.study):  # regress's own study, else `ovbench run`'s
        try:
            study = open_for_report(name, storage=url).study
            break
        except StorageError:
            continue
    if study is None:
        print(f"error: no study of {args.ablation} in {url}; run without --no-run", file=sys.stderr)
        return 2
    df = study_frame(study)
    current = seed_values(df, swept_params(study))
    path = Path(args.baseline)
    if args.update_baseline:
        write_baseline(path, args, spec, df, current)
        print(f"baseline written: {path} ({len(current)} settings x {len(spec.seeds)} seeds)")
        return 0
    baseline = load_baseline(path, spec, args.ablation)
    if isinstance(baseline, str):
        print(f"error: {baseline}", file=sys.stderr)
        return 2
    rows = compare(baseline, current)
    print(rule_text(baseline))
    print(diff_table(rows))
    bad = [r for r in rows if r["status"] == "REGRESSION"]
    print(f"\n{len(bad)} regression(s) in {len(rows)} comparisons ({time.time() - start:.0f} s)")
    if bad:
        print(failure_text(bad))
    return 1 if bad else 0
