"""Uncertainty in reports: seed CIs, paired differences from a reference, Holm, direction-aware marks,
the summary's sentences and the table formats (no training: studies filled with known numbers)."""
from __future__ import annotations

import math

import pytest
from scipy import stats as sp

from conftest import fill_study
from ovbench.errors import InputError
from ovbench.report import stats, tables
from ovbench.report.cli import build_report
from ovbench.report.frame import study_frame, swept_params

SPEC = """\
study: qs
base_config: configs/smoke/tiny_fcn.py
space:
  model.decode_head.channels: [8, 16, 32, 64]
seeds: [0, 1, 2, 3]
datasets: [toy]
objective:
  metric: toy/mIoU
  direction: {direction}
work_dir: {{work}}
"""
# per-seed mIoU: 64 is far above 8; 16 and 32 differ by noise only; seed 3 is a bad seed for all
VALUES = {8: [40.0, 41.0, 39.5, 35.0], 16: [50.0, 50.5, 49.0, 46.0], 32: [50.2, 49.8, 49.6, 45.8],
          64: [60.0, 61.5, 60.5, 56.0]}


def result(point: dict) -> dict:
    miou = VALUES[point["model.decode_head.channels"]][point["seed"]]
    return {"status": "ok", "metrics": {"toy": {"mIoU": miou}},
            "cost": {"trainable_params": 100 * point["model.decode_head.channels"], "train_time_s": 10.0 + point["seed"]}}


@pytest.fixture(params=["maximize", "minimize"])
def study(request, tmp_path):
    return fill_study(SPEC.format(direction=request.param), tmp_path, result)


def test_mean_ci_and_paired_difference_match_scipy():
    v = [50.0, 50.5, 49.0, 46.0]
    est = stats.mean_ci(v)
    lo, hi = sp.t.interval(0.95, len(v) - 1, loc=sum(v) / 4, scale=sp.sem(v))
    assert est.n == 4 and est.mean == pytest.approx(48.875) and est.half_width == pytest.approx((hi - lo) / 2)
    a, b = dict(enumerate(VALUES[16])), dict(enumerate(VALUES[8]))
    d = stats.paired_difference(a, b)
    ref = sp.ttest_rel(VALUES[16], VALUES[8])
    assert d.mean == pytest.approx(10.0) and d.p == pytest.approx(ref.pvalue) and d.n == 4
    one = stats.paired_difference({0: 1.0, 1: 2.0}, {1: 0.0, 2: 5.0})  # one common seed: untestable
    assert one.n == 1 and math.isnan(one.p) and math.isnan(stats.mean_ci([3.0]).half_width)


def test_the_sd_ratio_interval_covers_the_true_ratio_and_agrees_with_its_p():
    import numpy as np

    rng = np.random.default_rng(0)
    covered, agree, reps = 0, 0, 2000
    for _ in range(reps):  # 6 seeds at sd 1.0 against 5 at sd 2.0: the true ratio is 0.5
        a, b = rng.normal(0, 1.0, 6), rng.normal(3, 2.0, 5)
        r = stats.sd_ratio(list(a), list(b))
        assert r.ratio == pytest.approx(a.std(ddof=1) / b.std(ddof=1))
        covered += r.low <= 0.5 <= r.high
        agree += (r.p < 0.05) == (not r.low <= 1.0 <= r.high)
    assert 0.93 < covered / reps < 0.97 and agree == reps
    assert math.isnan(stats.sd_ratio([1.0], [1.0, 2.0]).ratio)
    paired = [rng.multivariate_normal([0, 0], [[1, 0.7], [0.7, 1]], 5) for _ in range(reps)]
    covered = sum(r.low <= 1.0 <= r.high for r in (stats.sd_ratio(list(x[:, 0]), list(x[:, 1])) for x in paired))
    assert covered / reps >= 0.95  # seeds shared by both settings: conservative, as the docstring says


def test_holm_step_down():
    # m=3: 0.01*3=0.03, 0.02*2=0.04, 0.04*1=0.04 (monotone); NaN is no test
    assert stats.holm([0.04, 0.01, math.nan, 0.02]) == pytest.approx([0.04, 0.03, math.nan, 0.04], nan_ok=True)


def test_marks_follow_the_objective_direction_and_tie_indistinguishable_rows(study):
    _, s, _ = study
    direction = s.user_attrs["spec"]["objective"][1]
    table = tables.summarize(study_frame(s), swept_params(s), objective=("toy/mIoU", direction))
    marks = dict(zip(table["setting"], table["toy/mIoU:mark"]))
    if direction == "maximize":
        assert marks == {"channels=8": "", "channels=16": "", "channels=32": "", "channels=64": "best"}
    else:  # 8 is best; 16 and 32 are clearly worse than 8 and 64 worse still
        assert marks == {"channels=8": "best", "channels=16": "", "channels=32": "", "channels=64": ""}
    tie = stats.best_group({"a": dict(enumerate(VALUES[16])), "b": dict(enumerate(VALUES[32]))}, maximize=True)
    assert tie == {"a": "best", "b": "tied"}  # 48.875 vs 48.85: not distinguishable
    exact = stats.best_group({"a": {0: 1.0}, "b": {0: 1.0}, "c": {0: 0.5}}, maximize=True)
    assert exact == {"a": "best", "b": "best"}  # exact ties are all best, and only they


def test_reference_differences_are_paired_holm_corrected_and_checked(study):
    _, s, _ = study
    df, params = study_frame(s), swept_params(s)
    objective = ("toy/mIoU", s.user_attrs["spec"]["objective"][1])
    table = tables.summarize(df, params, objective=objective, reference="channels=16").set_index("setting")
    raw = [sp.ttest_rel(VALUES[c], VALUES[16]).pvalue for c in (8, 32, 64)]
    holm = stats.holm(raw)
    assert table.loc["channels=64", "toy/mIoU:diff"] == pytest.approx(10.625)
    assert [table.loc[f"channels={c}", "toy/mIoU:p"] for c in (8, 32, 64)] == pytest.approx(holm)
    assert math.isnan(table.loc["channels=16", "toy/mIoU:diff"])
    md = tables.render(table.reset_index(), ["toy/mIoU"], "md", reference="channels=16")
    assert "channels=16 (ref)" in md and "| ref |" in md and "+10.62 ±" in md
    with pytest.raises(InputError, match="reference setting 'q=9' is not a setting.*channels=8"):
        tables.summarize(df, params, objective=objective, reference="q=9")


def test_report_writes_summary_sentences_compact_table_and_formats(tmp_path):
    path, _, _ = fill_study(SPEC.format(direction="maximize"), tmp_path, result)
    texts = build_report(str(path), ["md", "latex", "html"], tmp_path / "reports", plots_on=False,
                         reference="channels=16")
    out = tmp_path / "reports" / "qs"
    summary = (out / "summary.md").read_text()
    assert "Best on toy/mIoU: channels=64" in summary
    assert "channels=64 beats channels=16 by 10.62 ±" in summary
    assert "channels=32 and channels=16 are not distinguishable" in summary
    assert "uncorrected, 4 seeds)" in summary  # the best's pairs are said to be uncorrected
    assert summary.count("channels=64 beats channels=16") == 1  # best vs reference: once, Holm-corrected
    build_report(str(path), ["md"], tmp_path / "reports", plots_on=False, reference="channels=64", force=True)
    best_is_ref = (out / "summary.md").read_text()
    assert "Best on toy/mIoU: channels=64" in best_is_ref and "uncorrected" not in best_is_ref  # said once, Holm
    assert "channels=16 and channels=64" in best_is_ref or "channels=64 beats channels=16" in best_is_ref
    assert "<li>" in (out / "summary.html").read_text()
    compact = texts["compact"].splitlines()
    header = next(line for line in compact if line.startswith("| setting"))
    assert header.split(" | ")[1:] == ["toy/mIoU", "Δ toy/mIoU", "trainable_params", "train_time_s", "seeds |"]
    assert "95% CI half-width over seeds (Student t, n-1 df)" in texts["compact"]
    latex = texts["latex"]
    assert latex.startswith("\\begin{table}") and "\\toprule" in latex and "\\bottomrule" in latex
    page = texts["html"]
    assert "position:sticky" in page and '<th colspan="2">toy</th>' in page and "<h1>qs</h1>" in page


def test_one_seed_says_no_uncertainty(tmp_path):
    path, _, _ = fill_study(SPEC.format(direction="maximize").replace("[0, 1, 2, 3]", "[0]"), tmp_path, result)
    texts = build_report(str(path), ["md"], tmp_path / "reports", plots_on=False)
    assert "one seed per setting, so no uncertainty is shown" in texts["md"] and " ± " not in texts["md"]
    assert "One seed per setting: nothing below is tested" in (tmp_path / "reports" / "qs" / "summary.md").read_text()


def test_paper_order_holds_or_is_reversed(tmp_path):
    from ovbench.report.summary import paper_order_sentences

    values = {f"c={c}": dict(enumerate(v)) for c, v in VALUES.items()}
    paper = {"c=8": {"params_M": 1.0, "A-847": 12.0}, "c=64": {"params_M": 2.0, "A-847": 11.0},
             "c=16": {"A-847": 10.0}, "c=32": {"A-847": 10.5}}
    text = " ".join(paper_order_sentences(values, paper, "toy/mIoU", maximize=True))
    assert "The paper's order c=8 > c=64 (A-847 12.0 vs 11.0) is reversed here" in text
    assert "The paper's order c=64 > c=16 (A-847 11.0 vs 10.0) holds here" in text
    assert "The paper's order c=32 > c=16 (A-847 10.5 vs 10.0) is not resolved here" in text
    assert text.count("uncorrected, ") >= 3  # each order is its own test, said to be uncorrected


def test_a_paper_order_significant_only_before_correction_is_not_called_resolved():
    """Ten orders tested at 0.05 each would give a false verdict in about every second study: the
    verdict follows the Holm-corrected p over the paper's orders, the uncorrected p is shown too."""
    from ovbench.report import stats
    from ovbench.report.summary import paper_order_sentences

    # a - b has p about 0.03 alone; with four other orders, Holm multiplies it past 0.05
    values = {"a": {0: 10.0, 1: 11.0, 2: 12.5}, "b": {0: 9.0, 1: 9.0, 2: 11.0},
              "c": {0: 30.0, 1: 10.0, 2: 20.0}, "d": {0: 11.0, 1: 25.0, 2: 14.0}}
    alone = stats.paired_difference(values["a"], values["b"])
    assert 0.01 < alone.p < stats.ALPHA
    paper = {"a": {"A-847": 4.0}, "b": {"A-847": 3.0}, "c": {"A-847": 2.0}, "d": {"A-847": 1.0}}
    text = " ".join(paper_order_sentences(values, paper, "m", maximize=True))
    assert "The paper's order a > b (A-847 4.0 vs 3.0) is not resolved here" in text
    assert f"{stats.fmt_p(alone.p)} uncorrected" in text
    assert "Holm-corrected over the paper's 6 orders" in text
    # the same pair, alone in the paper, holds
    alone_text = " ".join(paper_order_sentences(values, {k: paper[k] for k in "ab"}, "m", maximize=True))
    assert "The paper's order a > b (A-847 4.0 vs 3.0) holds here" in alone_text


def test_reference_from_the_ablation_file_and_checked_against_the_space(tmp_path):
    from ovbench.sweep.spec import SpecError, load_spec

    text = SPEC.format(direction="maximize") + "reference: channels=16\n"
    path, _, _ = fill_study(text, tmp_path, result)
    assert load_spec(path).reference == "channels=16"
    texts = build_report(str(path), ["md"], tmp_path / "reports", plots_on=False)
    assert "channels=16 (ref)" in texts["compact"] and "Δ toy/mIoU" in texts["compact"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.format(work=tmp_path / "w").replace("reference: channels=16", "reference: q=16"))
    with pytest.raises(SpecError, match="reference.*'q=16' is not a setting of the space; expected one of: "
                                        "channels=8; channels=16; channels=32; channels=64"):
        load_spec(bad)


def test_a_study_reported_by_name_uses_the_files_current_reference(tmp_path):
    from ovbench.sweep import study as st
    from ovbench.sweep.spec import load_spec

    path, study, url = fill_study(SPEC.format(direction="maximize"), tmp_path, result)
    assert study.user_attrs.get("reference") is None
    path.write_text(path.read_text() + "reference: channels=32\n")  # not part of the study's identity
    spec = load_spec(path)
    st.open_study(spec, st.open_storage(url), spec.study)  # what `ovbench run` does on the next start
    texts = build_report("qs", ["md"], tmp_path / "reports", storage=url, plots_on=False)
    assert "channels=32 (ref)" in texts["compact"]


def test_one_seed_cells_show_the_image_bootstrap_labelled_as_such(tmp_path):
    """With one seed a cell's ± is the bootstrap over its trial's evaluation images (image_stats.npz),
    marked † and explained in the legend; settings with several seeds keep the seed CI."""
    import numpy as np
    import pandas as pd

    from ovbench.evaluation.image_stats import STATS_FILE, ImageStats, save_image_stats

    rng = np.random.default_rng(0)
    label = rng.integers(20, 60, (30, 4, 1)).astype(np.float32)
    inter = np.floor(label * rng.uniform(0.3, 0.9, label.shape)).astype(np.float32)
    pred = label.copy()
    values = np.concatenate([inter, label + pred - inter, pred, label], axis=2)  # [images, classes, 4]
    trial = tmp_path / "trial"
    trial.mkdir()
    stats_ = ImageStats("iou", values, ("a", "b", "c", "d"), ("d",))
    save_image_stats(trial / STATS_FILE, {"toy": {"iou": stats_}})
    rows = [dict(number=0, state="COMPLETE", seed=0, ch=8, work_dir=str(trial), **{"toy/mIoU": stats_.figure("mIoU")})]
    rows += [dict(number=i + 1, state="COMPLETE", seed=i, ch=16, work_dir=None, **{"toy/mIoU": 50.0 + i})
             for i in range(3)]
    table = tables.summarize(pd.DataFrame(rows), ["ch"], ["toy/mIoU"])
    one, three = table.iloc[0], table.iloc[1]
    expected = stats.image_bootstrap_half_width(str(trial), "toy/mIoU")
    draws = stats_.bootstrap("mIoU", n=stats.BOOTSTRAP_RESAMPLES)
    assert expected == pytest.approx((np.percentile(draws, 97.5) - np.percentile(draws, 2.5)) / 2)
    assert 0 < expected < 10
    assert one["toy/mIoU:ci_kind"] == "images" and one["toy/mIoU:ci"] == pytest.approx(expected)
    assert three["toy/mIoU:ci_kind"] == "seeds" and three["toy/mIoU:ci"] == pytest.approx(sp.t.ppf(0.975, 2) * 1.0 / math.sqrt(3))
    assert tables.metric_cell(one, "toy/mIoU", "md").endswith(" †")
    assert "†" not in tables.metric_cell(three, "toy/mIoU", "md")
    assert "bootstrap over the evaluation images" in tables.legend(1, None, None, image_ci=True)
    assert math.isnan(stats.image_bootstrap_half_width(str(tmp_path / "none"), "toy/mIoU"))
    assert math.isnan(stats.image_bootstrap_half_width(str(trial), "toy/PQ"))


def test_minimum_detectable_difference_matches_the_normal_approximation_for_many_seeds():
    # n = 60: the t test is nearly the z test, whose MDD is (z_0.975 + z_0.8) sd / sqrt(n)
    z = sp.norm.ppf(0.975) + sp.norm.ppf(0.8)
    assert stats.minimum_detectable_difference(2.0, 60) == pytest.approx(z * 2.0 / math.sqrt(60), rel=0.03)
    assert stats.paired_t_power(stats.minimum_detectable_difference(1.0, 5), 1.0, 5) == pytest.approx(0.8)
    assert stats.minimum_detectable_difference(1.0, 3) > stats.minimum_detectable_difference(1.0, 5)
    assert stats.paired_t_power(0.0, 1.0, 4) == pytest.approx(0.05)
    assert math.isnan(stats.minimum_detectable_difference(1.0, 1))


def test_seed_split_separates_what_a_seed_does_in_every_setting_from_the_rest():
    """Additive settings x seeds: the whole seed spread is shared and a paired difference sees none of
    it; pure interaction: nothing is shared. Checked against the ANOVA computed another way (numpy
    residuals of the two-way additive fit, scipy's F) on random data."""
    import numpy as np

    seed_effect = {0: 2.0, 1: -1.0, 2: 0.5, 3: -1.5}
    additive = {k: {s: base + e for s, e in seed_effect.items()} for k, base in (("a", 10.0), ("b", 13.0))}
    split = stats.seed_split(additive)
    assert (split.seeds, split.settings) == (4, 2)
    assert split.interaction_sd == pytest.approx(0.0, abs=1e-9)
    assert split.shared_sd == pytest.approx(np.std(list(seed_effect.values()), ddof=1))
    assert split.pooled_sd == pytest.approx(split.shared_sd) and split.p == 0.0
    assert split.setting_sd == pytest.approx(np.std([10.0, 13.0], ddof=1)) and split.setting_p == 0.0

    constant = stats.seed_split({"a": {0: 75.72, 1: 75.72}, "b": {0: 75.72, 1: 75.72}})
    assert constant.interaction_sd == 0.0 and math.isnan(constant.p)  # nothing moves: no test, not p=0

    crossed = {"a": {0: 1.0, 1: -1.0, 2: 1.0}, "b": {0: -1.0, 1: 1.0, 2: -1.0}}
    split = stats.seed_split(crossed)
    assert split.shared_sd == 0.0 and split.interaction_sd > 0 and split.p == pytest.approx(1.0)
    assert split.setting_sd == 0.0 and split.setting_p == pytest.approx(sp.f.sf(0.25, 1, 2))  # means +-1/3: MS 2/3 vs 8/3

    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, 3)) + rng.normal(size=(5, 1))  # seeds x settings, a shared seed part
    values = {f"s{j}": {i: float(x[i, j]) + j for i in range(5)} for j in range(3)}
    values["s0"][7] = 99.0  # a seed one setting lacks is left out
    split = stats.seed_split(values)
    y = x + np.arange(3)
    resid = y - y.mean(0) - y.mean(1, keepdims=True) + y.mean()
    ms_inter = (resid ** 2).sum() / (4 * 2)
    ms_seed = 3 * ((y.mean(1) - y.mean()) ** 2).sum() / 4
    assert split.seeds == 5
    assert split.interaction_sd == pytest.approx(math.sqrt(ms_inter))
    assert split.f == pytest.approx(ms_seed / ms_inter)
    assert split.p == pytest.approx(sp.f.sf(ms_seed / ms_inter, 4, 8))
    assert split.pooled_sd == pytest.approx(math.sqrt(y.var(0, ddof=1).mean()))
    ms_setting = 5 * ((y.mean(0) - y.mean()) ** 2).sum() / 2
    assert split.setting_sd == pytest.approx(math.sqrt(max(ms_setting - ms_inter, 0.0) / 5))
    assert split.setting_p == pytest.approx(sp.f.sf(ms_setting / ms_inter, 2, 8))
    # a paired difference's sd is sqrt(2) x the interaction sd, averaged over the pairs of settings
    pair_vars = [np.var(y[:, a] - y[:, b], ddof=1) for a in range(3) for b in range(a + 1, 3)]
    assert np.mean(pair_vars) == pytest.approx(2 * ms_inter)


def test_a_study_never_mixes_benchmark_versions(tmp_path):
    """Results on one version of the embedded benchmark refuse results on another (the file's hash cannot
    see a data change); --rerun makes the old trials history, after which the new version is accepted."""
    from ovbench.data.synth.writers import MANIFEST, benchmark_version
    from ovbench.sweep import study as st

    def with_benchmark(point):
        return dict(result(point), benchmark="synth v1 (key aaa)")

    _, study, _ = fill_study(SPEC.format(direction="maximize"), tmp_path, with_benchmark)
    st.check_benchmark(study, "synth v1 (key aaa)")  # same data: fine
    with pytest.raises(st.StudyMismatch, match=r"synth v1 \(key aaa\).*synth v2 \(key bbb\).*--rerun"):
        st.check_benchmark(study, "synth v2 (key bbb)")
    st.mark_rerun(study)
    st.check_benchmark(study, "synth v2 (key bbb)")
    # the version comes from the generated data's manifest; other data has none
    root = tmp_path / "synth"
    (root / "synth_large").mkdir(parents=True)
    (root / MANIFEST).write_text('{"benchmark": "synth v2", "key": "bbb"}')
    assert benchmark_version({"synth_large": str(root / "synth_large")}) == "synth v2 (key bbb)"
    assert benchmark_version({"toy": str(tmp_path / "toy")}) is None


def test_paper_ranking_is_plotted_beside_the_measured_one(tmp_path):
    """A study whose file gives the paper's figures gets metric-vs-paper points (one per reported setting)."""
    import pandas as pd

    from ovbench.report import plots

    table = pd.DataFrame({"setting": ["channels=8", "channels=16", "channels=64"], "toy/mIoU": [40.0, 50.0, 60.0],
                          "toy/mIoU:ci": [1.0, 1.5, 2.0]})
    paper = {"channels=8": {"params_M": 1.0, "A-847": 12.0}, "channels=64": {"params_M": 2.0, "A-847": 11.0},
             "channels=99": {"A-847": 9.0}}  # a setting the study does not have is left out
    files = plots.paper_vs_measured(table, paper, "toy/mIoU", tmp_path)
    assert sorted(f.name for f in files) == ["toy_mIoU_vs_paper.png", "toy_mIoU_vs_paper.svg"]
    svg = (tmp_path / "toy_mIoU_vs_paper.svg").read_text()
    assert "paper: A-847" in svg and "channels=8" in svg and "channels=64" in svg and "channels=99" not in svg
    (tmp_path / "again").mkdir()
    plots.paper_vs_measured(table, paper, "toy/mIoU", tmp_path / "again")  # same numbers, same file
    assert (tmp_path / "again" / "toy_mIoU_vs_paper.svg").read_text() == svg
    assert plots.paper_vs_measured(table, {"channels=8": {"A-847": 1.0}}, "toy/mIoU", tmp_path / "one") == []
    assert plots.paper_vs_measured(table, None, "toy/mIoU", tmp_path / "none") == []


def test_recording_a_finished_trial_again_keeps_the_first_record(tmp_path):
    """Two workers may record the same trial (its owner, and reconcile() recovering its result.json):
    the second record must not fail the run, and the first stands."""
    from optuna.trial import TrialState

    from ovbench.sweep import study as st

    _, study, _ = fill_study(SPEC.format(direction="maximize"), tmp_path, result)
    done = study.get_trials(deepcopy=False)[0]
    first = done.user_attrs["metrics"]
    state, _ = st.record_result(study, done, {"status": "ok", "metrics": {"toy": {"mIoU": 1.0}}}, "toy/mIoU")
    assert state == TrialState.COMPLETE
    assert study.get_trials(deepcopy=False)[0].user_attrs["metrics"] == first


def test_ties_are_said_as_ties_and_a_metric_no_setting_moves_gets_one_sentence():
    from ovbench.report.summary import constant_sentence, ranking_text

    values = {"a": {0: 1.0, 1: 3.0}, "b": {0: 5.0, 1: 5.0}, "c": {0: 3.0, 1: 1.0}}
    assert ranking_text(values, maximize=True) == "b > a = c"
    assert ranking_text(values, maximize=False) == "a = c > b"
    assert constant_sentence(values, "toy/mIoU") is None
    same = {"a": {0: 75.72, 1: 75.72}, "b": {0: 75.72, 1: 75.72}}
    assert constant_sentence(same, "toy/oracle/PQ") == (
        "Every setting gives 75.72 toy/oracle/PQ on every seed: no setting moves it.")
    assert constant_sentence({"a": {0: 1.0, 1: 1.0}}, "m") is None  # one setting: nothing was ablated


def test_the_summary_skips_the_tests_of_a_metric_no_setting_moves(tmp_path):
    spec = SPEC.format(direction="maximize") + "reference: channels=16\n"

    def with_constant(point: dict) -> dict:
        out = result(point)
        out["metrics"]["toy"]["oracle/mIoU"] = 70.0
        return out

    path, _, _ = fill_study(spec, tmp_path, with_constant)
    build_report(str(path), ["md"], tmp_path / "reports", plots_on=False)
    summary = (tmp_path / "reports" / "qs" / "summary.md").read_text()
    section = summary.split("## toy/oracle/mIoU")[1]
    assert section.strip() == "- Every setting gives 70.00 toy/oracle/mIoU on every seed: no setting moves it."
    assert "channels=64 beats channels=16" in summary.split("## toy/oracle/mIoU")[0]


def test_a_p_value_near_the_threshold_shows_which_side_it_is_on():
    assert stats.fmt_p(0.0497) == "p=0.0497" and stats.fmt_p(0.0503) == "p=0.0503"
    assert stats.fmt_p(0.04998) == "p=0.04998" and stats.fmt_p(0.0461) == "p=0.046"
    assert stats.fmt_p(0.0449) == "p=0.04" and stats.fmt_p(0.0551) == "p=0.06" and stats.fmt_p(0.2) == "p=0.20"
    assert stats.fmt_p(0.004) == "p=0.004" and stats.fmt_p(0.0004) == "p<0.001" and stats.fmt_p(None) == "-"
