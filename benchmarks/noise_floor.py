"""The embedded benchmark's noise floor: how much of a figure is noise, and what a study can detect.

    python benchmarks/noise_floor.py                 # run ablations/noise_floor.yaml (resumable), the thread check, analyse
    python benchmarks/noise_floor.py --no-run        # analyse what has been run
    python benchmarks/noise_floor.py --rerun         # every point again (after a benchmark version change)
    python benchmarks/noise_floor.py --ablation F --threads-setting peft=hclip
    python benchmarks/noise_floor.py --isa-seeds 0 1 2 3 4  # also retrain those seeds with AVX2 kernels
    python benchmarks/noise_floor.py --no-run --ablation ablations/train_length.yaml \
        --threads-setting max_iters=200           # does training longer lower the seed noise?

For each setting of the study (H-CLIP q=32 and frozen CLIP, 5 seeds each) and each evaluation
set's objective-style metric it separates three sources of noise (issue 20):

* **training (seed) noise**: the standard deviation over seeds, each trained model evaluated on
  the whole, fixed evaluation set;
* **evaluation-set sampling noise**: the standard deviation of a bootstrap over the images of one
  trained model (1,000 resamples, from the trial's ``image_stats.npz``), averaged (root mean square)
  over the seeds. It is how much the figure would move on another draw of images from the same
  world; it does not enter a paired comparison on the same images, so it is reported, not added;
* **class-independent part of the seed noise**: the seed sd the mean over classes would have if
  each class's IoU moved between seeds independently of the others (sqrt of the summed per-class
  seed variances / classes², per-class IoUs from ``image_stats.npz``). A seed sd well above it says
  the seeds move many classes together (a model-wide factor, which more classes per set would not
  average out); a seed sd near it says the spread is per-class swings, which more classes would;
* **floating-point noise**: the same seed trained with 1 thread (the study's trial: local workers
  get one thread each on 2 cores) and with 2 threads (one extra trial): every operation is the
  same up to the order of float additions;
* **instruction-set noise** (``--isa-seeds``), a stand-in for another processor: the same seeds
  trained with PyTorch's, oneDNN's and MKL's kernels held to AVX2 (``ATEN_CPU_CAPABILITY``,
  ``ONEDNN_MAX_CPU_ISA``, ``MKL_CBWR``), as on a processor without AVX-512. Other kernels sum floats
  in another order, which is what moves a seed between machines. It is measured on one machine, so
  it is an emulation of a second processor, not a second machine (which this project's CI has not
  got); its paired differences say whether the seed CIs would cover a change of machine.

Then the **minimum detectable difference** (MDD) at 3 and 5 seeds: the true difference a
two-sided paired t test at alpha = 0.05 finds with 80% power (noncentral t;
:func:`ovbench.report.stats.minimum_detectable_difference`), for per-seed differences with
standard deviation sqrt(2) x the seed sd (two settings with this setting's noise, independent),
and with the measured sd of the H-CLIP - frozen per-seed differences.

It also compares every setting with the study's ``reference:`` (with no reference and two settings,
the second with the first): the sd of their per-seed differences beside the sd they would have if
the two settings' seeds were unrelated (a seed that does the same in both, through its data order
or head initialisation, cancels in a paired test and shows as a measured sd below it), the MDDs the
measured sd gives, and the two seed sds with their ratio's 95% F interval (a recipe that lowers the
noise shows a ratio below 1 whose interval excludes 1).

Never compare these figures with another machine's: the decomposition itself says why.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parents[1]
BOOTSTRAP = 1000


def run_study(ablation: str, rerun: bool) -> None:
    """``ovbench run`` of the study: resumable, so an interrupted run continues where it stopped
    (``rerun``: every point again, e.g. on a new benchmark version; the old trials stay as history)."""
    code = subprocess.call([sys.executable, "-m", "ovbench.cli", "run", ablation] + (["--rerun"] if rerun else []),
                           cwd=ROOT)
    if code not in (0, 1):  # 1: some trial failed; the analysis says which settings have seeds
        raise SystemExit(f"ovbench run {ablation} exited {code}")


def study_trial(df: Any, labels: List[str], setting: str, seed: int) -> Optional[Dict[str, Any]]:
    """The study's own trial of ``setting`` and ``seed`` as ``{"metrics": {set: {key: value}}}``."""
    for row, label in zip(df.to_dict("records"), labels):
        if label == setting and row["seed"] == seed and row["state"] == "COMPLETE":
            metrics: Dict[str, Dict[str, float]] = {}
            for col, value in row.items():
                if "/" in col:
                    set_name, key = col.split("/", 1)
                    metrics.setdefault(set_name, {})[key] = value
            return {"metrics": metrics}
    return None


# Environment that holds every kernel library to AVX2, as on a processor without AVX-512 (PyTorch's
# ATen dispatch, oneDNN's convolutions and MKL's BLAS; each documented by its library).
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}


def variant_trial(spec: Any, setting: str, seed: int, threads: int, isa: str = "native",
                  run: bool = True) -> Optional[Dict[str, Any]]:
    """One trial of ``setting`` (its label, e.g. ``peft=hclip``) with ``threads`` torch threads and
    kernels for ``isa`` (``native`` or ``avx2``), outside the study (its own work folder); reused if it
    already finished, run only if ``run``."""
    from ovbench.data.synth.writers import benchmark_version
    from ovbench.sweep.executor import prepare_datasets, trial_request
    from ovbench.sweep.labels import setting_label
    from ovbench.sweep.study import default_work_root

    points = [p for p in spec.grid_points() if p["seed"] == seed]
    labels = [setting_label(p, list(spec.space)) for p in points]
    point = next((p for p, label in zip(points, labels) if label == setting), None)
    if point is None:
        raise SystemExit(f"no setting {setting!r} in {spec.study}; the settings are {sorted(set(labels))}")
    roots = prepare_datasets(spec)
    version = (benchmark_version(roots) or "data").split(" (")[0].replace(" ", "-")  # a new version runs anew
    name = f"{version}-{setting.replace('=', '-')}-seed{seed}-t{threads}" + ("" if isa == "native" else f"-{isa}")
    work = default_work_root(spec) / "threads" / name
    result = work / "result.json"
    if not result.is_file() and run:
        work.mkdir(parents=True, exist_ok=True)
        claim = SimpleNamespace(point=point, trial=SimpleNamespace(number=0), work_dir=work)
        req = trial_request(spec, claim, roots)
        (work / "request.json").write_text(json.dumps(req, indent=2, default=str))
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), **(AVX2_ENV if isa == "avx2" else {}))
        print(f"variant: {setting} seed {seed}, {threads} thread(s), {isa} kernels -> {work}", flush=True)
        with open(work / "trial.log", "w") as log:
            subprocess.call([sys.executable, "-m", "ovbench.sweep.trial", str(work / "request.json")],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    data = json.loads(result.read_text()) if result.is_file() else {}
    return data if data.get("status") == "ok" else None


def isa_trials(spec: Any, setting: str, seeds: List[int], run: bool) -> Dict[int, Dict[str, Any]]:
    """The AVX2-kernel trials of ``setting`` for ``seeds``, two at a time (one thread each, as the
    study's own trials run), by seed; seeds whose trial failed or was not run are left out."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:
        done = pool.map(lambda seed: variant_trial(spec, setting, seed, 1, "avx2", run), seeds)
        return {seed: trial for seed, trial in zip(seeds, done) if trial}


def print_isa_check(df: Any, labels: List[str], setting: str, avx2: Dict[int, Dict[str, Any]],
                    metrics: List[str]) -> None:
    """Per metric: the paired differences AVX2 - native kernels over the seeds, beside the seed sd."""
    from ovbench.report import stats

    print(f"\ninstruction-set noise (emulated processor without AVX-512): {setting}, seeds "
          f"{sorted(avx2)}, AVX2 - native kernels, 1 thread each:\n")
    print("| metric | native mean | AVX2 mean | per-seed differences | mean difference ± 95% CI (p) "
          "| largest \\|difference\\| | sd of differences | seed sd (native) |\n|---|---|---|---|---|---|---|---|")
    own = {seed: study_trial(df, labels, setting, seed) for seed in sorted(avx2)}
    pairs = {seed: (own[seed], trial) for seed, trial in avx2.items() if own[seed]}  # seeds the study has
    for metric in metrics:
        set_name, key = metric.split("/", 1)
        native = {seed: a["metrics"][set_name][key] for seed, (a, _) in sorted(pairs.items())}
        other = {seed: b["metrics"][set_name][key] for seed, (_, b) in sorted(pairs.items())}
        if len(native) < 2:
            continue
        diffs = [other[s] - native[s] for s in native]
        test = stats.paired_difference(other, native)
        print(f"| {metric} | {statistics.mean(native.values()):.2f} | {statistics.mean(other.values()):.2f} | "
              f"{' '.join(f'{d:+.2f}' for d in diffs)} | {test.mean:+.2f} ± {test.half_width:.2f} "
              f"({stats.fmt_p(test.p)}) | {max(abs(d) for d in diffs):.2f} | {sd(diffs):.2f} | "
              f"{sd(list(native.values())):.2f} |")


def sd(values: List[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else math.nan


def decomposition(df: Any, labels: List[str], metrics: List[str]) -> List[Dict[str, Any]]:
    """Per setting and metric: mean, seed sd, bootstrap sd (RMS over seeds), and the per-seed values."""
    from ovbench.evaluation.image_stats import STATS_FILE, load_image_stats

    rows = []
    for setting in sorted(set(labels)):
        trials = [r for r, label in zip(df.to_dict("records"), labels) if label == setting and r["state"] == "COMPLETE"]
        for metric in metrics:
            set_name, key = metric.split("/", 1)
            by_seed = {int(r["seed"]): float(r[metric]) for r in trials if r.get(metric) == r.get(metric)}
            boot, per_class = [], []
            for r in trials:
                path = Path(str(r["work_dir"])) / STATS_FILE
                if path.is_file():
                    stats = load_image_stats(path).get(set_name, {}).get("iou")
                    if stats is not None:
                        boot.append(float(stats.bootstrap(key, n=BOOTSTRAP, seed=int(r["seed"])).std(ddof=1)))
                        per_class.append(stats.class_values(key))
            rows.append(dict(setting=setting, metric=metric, seeds=by_seed,
                             mean=statistics.mean(by_seed.values()) if by_seed else math.nan,
                             seed_sd=sd(list(by_seed.values())),
                             boot_sd=math.sqrt(statistics.mean(b * b for b in boot)) if boot else math.nan,
                             class_indep_sd=class_independent_sd(per_class)))
    return rows


def class_independent_sd(per_class: List[Any]) -> float:
    """The seed sd of a mean over classes if each class moved independently between seeds:
    sqrt(sum of per-class seed variances) / classes, over the classes present in every trial."""
    import numpy as np

    if len(per_class) < 2:
        return math.nan
    values = np.array(per_class)  # [seeds, classes]
    present = np.isfinite(values).all(0)
    if not present.any():
        return math.nan
    return float(math.sqrt(values[:, present].var(0, ddof=1).sum()) / present.sum())


def paired_sd(rows: List[Dict[str, Any]], a: str, b: str, metric: str) -> float:
    by = {(r["setting"], r["metric"]): r["seeds"] for r in rows}
    sa, sb = by.get((a, metric), {}), by.get((b, metric), {})
    common = sorted(set(sa) & set(sb))
    return sd([sa[s] - sb[s] for s in common]) if len(common) > 1 else math.nan


def unpaired_sd(rows: List[Dict[str, Any]], a: str, b: str, metric: str) -> float:
    """The sd the per-seed differences of ``a`` and ``b`` would have if their seeds were unrelated:
    sqrt(sd_a² + sd_b²). A measured :func:`paired_sd` well below it says a seed does the same in both
    settings (data order, head initialisation), which a paired test removes."""
    by = {(r["setting"], r["metric"]): r["seed_sd"] for r in rows}
    return math.sqrt(by[(a, metric)] ** 2 + by[(b, metric)] ** 2)


def compared_pairs(settings: List[str], reference: Optional[str]) -> List[Tuple[str, str]]:
    """(setting, baseline) pairs for the paired section: every setting against the study's reference,
    or, with no reference and two settings, the second against the first."""
    if reference in settings:
        return [(s, reference) for s in settings if s != reference]
    return [(settings[1], settings[0])] if len(settings) == 2 else []


def seed_sd_ratio(rows: List[Dict[str, Any]], a: str, b: str, metric: str) -> str:
    """``1.20 / 2.40 | 0.50 [0.17, 1.49] (p=0.20)``: does setting ``a`` (e.g. a longer recipe) spread
    over seeds less than ``b``? (:func:`ovbench.report.stats.sd_ratio`: an F interval, conservative
    for settings paired by seed.)"""
    from ovbench.report import stats

    by = {(r["setting"], r["metric"]): r for r in rows}
    ra, rb = by[(a, metric)], by[(b, metric)]
    ratio = stats.sd_ratio(list(ra["seeds"].values()), list(rb["seeds"].values()))
    return (f"{ra['seed_sd']:.2f} / {rb['seed_sd']:.2f} | {ratio.ratio:.2f} [{ratio.low:.2f}, {ratio.high:.2f}] "
            f"({stats.fmt_p(ratio.p)})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ablation", default="ablations/noise_floor.yaml")
    parser.add_argument("--no-run", action="store_true", help="analyse the study as it is; run nothing")
    parser.add_argument("--rerun", action="store_true", help="run every point again (a new benchmark version)")
    parser.add_argument("--threads-setting", default="peft=hclip", help="the setting of the 1-vs-2-thread check")
    parser.add_argument("--threads-seed", type=int, default=0)
    parser.add_argument("--isa-seeds", type=int, nargs="*", default=[],
                        help="retrain the threads setting with these seeds on AVX2 kernels (a stand-in "
                             "for another processor) and compare each with the study's own trial")
    args = parser.parse_args()
    os.chdir(ROOT)
    sys.path.insert(0, str(ROOT))
    from ovbench.report.frame import open_for_report, study_frame
    from ovbench.report.stats import minimum_detectable_difference
    from ovbench.report.tables import trial_labels
    from ovbench.sweep.spec import load_spec

    spec = load_spec(args.ablation)
    if not args.no_run:
        run_study(args.ablation, args.rerun)
    reported = open_for_report(args.ablation)
    df = study_frame(reported.study)
    labels = trial_labels(df, list(spec.space))
    metrics = [f"{name}/mIoU_unseen" for name in spec.datasets] + [f"{name}/mIoU" for name in spec.datasets]
    rows = decomposition(df, labels, metrics)

    one = study_trial(df, labels, args.threads_setting, args.threads_seed)  # the study runs 1 thread per trial
    two = variant_trial(spec, args.threads_setting, args.threads_seed, 2, run=not args.no_run)
    avx2 = isa_trials(spec, args.threads_setting, args.isa_seeds, run=not args.no_run)
    settings = sorted(set(labels))
    print(f"# noise floor: {spec.study} ({args.ablation}), {len(df)} trials\n")
    print("| setting | metric | seeds | mean | seed sd | seed sd if classes independent | bootstrap sd (images) "
          "| MDD 3 seeds | MDD 5 seeds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        pair_sd = math.sqrt(2) * r["seed_sd"]
        mdd = [minimum_detectable_difference(pair_sd, n) for n in (3, 5)]
        print(f"| {r['setting']} | {r['metric']} | {len(r['seeds'])} | {r['mean']:.2f} | {r['seed_sd']:.2f} | "
              f"{r['class_indep_sd']:.2f} | {r['boot_sd']:.2f} | {mdd[0]:.2f} | {mdd[1]:.2f} |")
    for a, b in compared_pairs(settings, spec.reference):
        print(f"\nper-seed differences {a} - {b} (measured pairing):\n")
        print(f"| metric | sd of differences | sqrt(2) x pooled seed sd | MDD 3 seeds | MDD 5 seeds | "
              f"seed sd {a} / {b} | sd ratio [95% F interval] (p) |\n|---|---|---|---|---|---|---|")
        for metric in metrics:
            d = paired_sd(rows, a, b, metric)
            print(f"| {metric} | {d:.2f} | {unpaired_sd(rows, a, b, metric):.2f} | "
                  f"{minimum_detectable_difference(d, 3):.2f} | {minimum_detectable_difference(d, 5):.2f} | "
                  f"{seed_sd_ratio(rows, a, b, metric)} |")
    if one and two:
        print(f"\nfloating-point noise: {args.threads_setting} seed {args.threads_seed}, 1 vs 2 threads:\n")
        print("| metric | 1 thread | 2 threads | difference |\n|---|---|---|---|")
        for metric in metrics:
            set_name, key = metric.split("/", 1)
            x, y = one["metrics"][set_name][key], two["metrics"][set_name][key]
            print(f"| {metric} | {x:.2f} | {y:.2f} | {y - x:+.2f} |")
    if avx2:
        print_isa_check(df, labels, args.threads_setting, avx2, metrics)


if __name__ == "__main__":
    main()
