"""A study -> one pandas DataFrame, one row per trial: the single input of every table and plot."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List, NamedTuple, Optional

import optuna
import pandas as pd

from ovbench.sweep import study as st
from ovbench.sweep.spec import AblationSpec, load_spec, study_name_problem

META_COLS = ("number", "state", "seed", "error", "config_hash", "git_commit", "device", "work_dir", "point_key",
             "benchmark")


class ReportedStudy(NamedTuple):
    study: optuna.Study
    spec: Optional[AblationSpec]  # None when the study was named, not its file
    url: str  # the storage it was read from (may hold a password: print through ``display_url``)


def open_for_report(target: str, storage: Optional[str] = None,
                    work_dir: Optional[str] = None) -> ReportedStudy:
    """A study from an ablation FILE (its default storage) or a STUDY name (``--storage`` or default).

    Reading only: a missing storage or study is a :class:`~ovbench.sweep.study.StorageError` naming where
    it looked and the command that creates it, and nothing is created on the way.
    """
    spec = None
    if target.endswith((".yaml", ".yml")) or Path(target).is_file():
        spec = load_spec(target)
        name = spec.study
        root = Path(work_dir).resolve() if work_dir else st.default_work_root(spec)
    else:
        name = target
        if study_name_problem(name):  # a name becomes a path below: refuse '..', separators
            raise st.StorageError(f"{target!r} is neither an ablation file nor a study name: {study_name_problem(name)}")
        root = Path(work_dir).resolve() if work_dir else (Path("work_dirs") / "sweeps" / name).resolve()
    url = storage or (spec.storage if spec and spec.storage else None) or st.default_storage_url(root)
    storage_obj = st.open_storage(url, create=False)
    try:
        study = optuna.load_study(storage=storage_obj, study_name=name)
    except KeyError:
        how = f"`ovbench run {target}`" if spec else "`ovbench run` on its ablation file"
        raise st.StorageError(f"no study {name!r} in {url}; {how} creates it (or pass the --storage/--work-dir "
                              "it ran with)") from None
    stored = study.user_attrs.get("spec_hash")
    if spec is not None and stored is not None and stored != spec.content_hash:
        # the file changed since this study ran: its --new-study twin, if any, is the file's study
        twin = st.study_name_for(spec, new_study=True)
        if twin in {s.study_name for s in optuna.get_all_study_summaries(storage_obj)}:
            return ReportedStudy(optuna.load_study(storage=storage_obj, study_name=twin), spec, url)
        raise st.StudyMismatch(
            f"{target}: study {name!r} in {url} was run with another version of this file (stored hash "
            f"{stored}, file hash {spec.content_hash}); a report would label its results with the current "
            f"file. Run the file again (`ovbench run {target} --new-study`), or report the old study by "
            f"name: `ovbench report {name} --work-dir {root}`."
        )
    return ReportedStudy(study, spec, url)


def swept_params(study: optuna.Study) -> List[str]:
    """The dotted keys of the study's space, in file order (from the spec stored in the study)."""
    spec = study.user_attrs.get("spec") or {}
    return list((spec.get("space") or {}).keys())


def study_frame(study: optuna.Study, latest_only: bool = True) -> pd.DataFrame:
    """One row per trial: params, seed, state, every metric (``<set>/<metric>``), cost, provenance.

    ``latest_only`` keeps the newest COMPLETE trial of each point (a ``--rerun``
    supersedes older ones) and drops failed trials of points that later completed.
    """
    params = swept_params(study)
    since = float(study.user_attrs.get("rerun_since", 0.0))
    rows: List[Dict[str, Any]] = []
    for t in study.get_trials(deepcopy=False):
        if t.state == optuna.trial.TrialState.RUNNING and latest_only:
            continue
        row: Dict[str, Any] = {"number": t.number, "state": t.state.name, "seed": t.user_attrs.get("seed"),
                               "current": st.counted(t, since)}
        choices = {k: tuple(v.get("choices") or ()) for k, v in
                   ((study.user_attrs.get("spec") or {}).get("space") or {}).items()}
        for key in params:
            row[key] = st.decode(t.params.get(key), choices.get(key)) if key in t.params else None
        result = {"metrics": t.user_attrs.get("metrics"), "cost": t.user_attrs.get("cost")}
        row.update(st.flat_metrics(result))
        for key in META_COLS[3:]:
            row[key] = t.user_attrs.get(key)
        row["duration_s"] = t.duration.total_seconds() if t.duration else None
        row["predictions"] = t.user_attrs.get("predictions")
        rows.append(row)
    df = pd.DataFrame(rows)
    if df.empty or not latest_only:
        return df
    df = df[df["current"]]
    done = df[df["state"] == "COMPLETE"].sort_values("number").drop_duplicates("point_key", keep="last")
    failed = df[(df["state"] == "FAIL") & ~df["point_key"].isin(done["point_key"])]
    return pd.concat([done, failed]).sort_values("number").reset_index(drop=True)


def metric_columns(df: pd.DataFrame) -> List[str]:
    """Per-dataset metric columns (``toy/mIoU`` ...), in a stable order."""
    return [c for c in df.columns if "/" in c]


COST_COLS = ("trainable_params", "trainable_params_free", "total_params", "train_time_s", "s_per_iter",
             "throughput_img_s", "peak_mem_mb", "flops")


def distinct_values(df: pd.DataFrame, column: str) -> List[str]:
    """The distinct non-empty values of a column (a failed trial has none: NaN in the frame, never "nan")."""
    if df.empty or column not in df:
        return []
    return sorted({str(v) for v in df[column].dropna() if str(v)})
