"""``ovbench regress``: run ``ablations/ci.yaml``, compare every metric and cost with a committed baseline.

The baseline (``reports/ci/baseline.json``) holds, per setting, the mean of
every metric and cost, plus the tolerances it is judged with (stated in the
file, so a reviewer sees them next to the numbers):

* accuracy metrics (``<set>/mIoU`` ...): a drop of more than ``abs`` points fails;
  a rise is reported as ``better`` (update the baseline) but does not fail;
* ``exact`` costs (parameter counts, FLOPs): any relative change above ``rel`` fails;
* ``upper`` costs (time, memory): only a rise above ``rel`` (relative) fails, since
  shared CI machines make them noisy;
* a setting missing from the run (its trial failed) fails.

Exit code 0 = no regression, 1 = regression, 2 = the run could not be compared.
``--update-baseline`` rewrites the file from this run (keeping its tolerances).
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pandas as pd

from ovbench.report import tables
from ovbench.report.frame import COST_COLS, open_for_report, study_frame, swept_params

DEFAULT_TOLERANCES: Dict[str, Dict[str, Any]] = {
    "metrics": {"abs": 2.0},
    "exact": {"rel": 0.001, "keys": ["trainable_params", "trainable_params_free", "total_params", "flops"]},
    "upper": {"rel": 2.0, "keys": ["s_per_iter", "train_time_s", "peak_mem_mb"]},
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ablation", default="ablations/ci.yaml", help="the CI study (default: ablations/ci.yaml)")
    parser.add_argument("--baseline", default="reports/ci/baseline.json", help="committed baseline file")
    parser.add_argument("--work-dir", default="work_dirs/regress", help="where the CI study runs")
    parser.add_argument("--update-baseline", action="store_true", help="rewrite the baseline from this run")
    parser.add_argument("--no-run", action="store_true", help="compare the study already in --work-dir")
    parser.add_argument("--workers", type=int, help="parallel trials (default: the file's)")


def measure(df: pd.DataFrame, params: List[str]) -> Dict[str, Dict[str, float]]:
    """{setting: {metric or cost: mean over seeds}} of the COMPLETE trials."""
    table = tables.summarize(df, params, metrics=[c for c in df.columns if "/" in c])
    out: Dict[str, Dict[str, float]] = {}
    for row in table.astype(object).to_dict("records"):
        values = {k: float(v) for k, v in row.items() if (("/" in k and not k.endswith(":std")) or k in COST_COLS)
                  and v is not None and not (isinstance(v, float) and math.isnan(v))}
        out[str(row["setting"])] = values
    return out


def compare(baseline: Dict[str, Any], current: Dict[str, Dict[str, float]]) -> List[Dict[str, Any]]:
    """One row per (setting, key) with baseline, current, delta, tolerance and status."""
    tol = {**DEFAULT_TOLERANCES, **(baseline.get("tolerances") or {})}
    exact, upper = set(tol["exact"]["keys"]), set(tol["upper"]["keys"])
    rows = []
    for setting, base_vals in baseline.get("settings", {}).items():
        cur = current.get(setting)
        if cur is None:
            rows.append(dict(setting=setting, key="(trial)", baseline="ok", current="missing", delta="",
                             tol="", status="REGRESSION"))
            continue
        for key, b in base_vals.items():
            c = cur.get(key)
            rows.append(_judge(setting, key, b, c, tol, exact, upper))
    return rows


def _judge(setting: str, key: str, b: float, c: Optional[float], tol: Dict[str, Any], exact: set,
           upper: set) -> Dict[str, Any]:
    row = dict(setting=setting, key=key, baseline=b, current=c, delta=None, tol="", status="ok")
    if c is None:
        row["status"] = "REGRESSION"
        return row
    row["delta"] = c - b
    if "/" in key:
        limit = float(tol["metrics"]["abs"])
        row["tol"] = f"-{limit} abs"
        if c < b - limit:
            row["status"] = "REGRESSION"
        elif c > b + limit:
            row["status"] = "better"
    elif key in exact:
        rel = float(tol["exact"]["rel"])
        row["tol"] = f"±{rel:.1%}"
        if abs(c - b) > rel * max(abs(b), 1e-12):
            row["status"] = "REGRESSION"
    elif key in upper:
        rel = float(tol["upper"]["rel"])
        row["tol"] = f"+{rel:.0%}"
        if c > b * (1 + rel):
            row["status"] = "REGRESSION"
    else:
        row["tol"] = "info"
    return row


def diff_table(rows: List[Dict[str, Any]], only_changed: bool = False) -> str:
    def f(v: Any) -> str:
        return f"{v:.4g}" if isinstance(v, float) else str(v)

    shown = [r for r in rows if not only_changed or r["status"] != "ok"]
    cols = ["setting", "key", "baseline", "current", "delta", "tol", "status"]
    widths = {c: max([len(c)] + [len(f(r[c])) for r in shown]) for c in cols}
    lines = ["  ".join(c.ljust(widths[c]) for c in cols)]
    lines += ["  ".join(f(r[c]).ljust(widths[c]) for c in cols) for r in shown]
    return "\n".join(lines)


def run_ablation(args: argparse.Namespace) -> None:
    """Run the CI study afresh (``--rerun``: older trials stay as history, the comparison uses this run)."""
    from ovbench.sweep import executor as ex
    from ovbench.sweep.run import prepare

    ns = argparse.Namespace(ablation=args.ablation, storage=None, work_dir=args.work_dir, workers=args.workers,
                            executor=None, rerun=True, new_study=True, heartbeat=10.0, grace=60.0,
                            no_progress=False)
    spec, opts = prepare(ns)
    ex.run_spec(spec, opts)


def run(args: argparse.Namespace) -> int:
    from ovbench.sweep.spec import load_spec
    from ovbench.sweep.study import study_name_for

    start = time.time()
    if not args.no_run:
        run_ablation(args)
    spec = load_spec(args.ablation)
    from ovbench.sweep.study import default_storage_url

    url = default_storage_url(Path(args.work_dir).resolve())
    study = None
    for name in (study_name_for(spec, True), spec.study):  # regress's own study, else `ovbench run`'s
        try:
            study, _ = open_for_report(name, storage=url)
            break
        except KeyError:
            continue
    if study is None:
        print(f"error: no study of {args.ablation} in {url}; run without --no-run", file=sys.stderr)
        return 2
    df = study_frame(study)
    current = measure(df, swept_params(study))
    path = Path(args.baseline)
    if args.update_baseline:
        old = json.loads(path.read_text()) if path.is_file() else {}
        data = {"ablation": args.ablation, "spec_hash": spec.content_hash,
                "tolerances": old.get("tolerances") or DEFAULT_TOLERANCES, "settings": current,
                "device": sorted({str(d) for d in df.get("device", []) if d})}
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
        print(f"baseline written: {path} ({len(current)} settings)")
        return 0
    if not path.is_file():
        print(f"error: no baseline at {path}; create it with --update-baseline", file=sys.stderr)
        return 2
    baseline = json.loads(path.read_text())
    if baseline.get("spec_hash") not in (None, spec.content_hash):
        print(f"error: {args.ablation} changed since the baseline was made (hash {baseline.get('spec_hash')} "
              f"vs {spec.content_hash}); regenerate it with --update-baseline", file=sys.stderr)
        return 2
    rows = compare(baseline, current)
    print(diff_table(rows))
    bad = [r for r in rows if r["status"] == "REGRESSION"]
    print(f"\n{len(bad)} regression(s) in {len(rows)} comparisons ({time.time() - start:.0f} s)")
    return 1 if bad else 0
