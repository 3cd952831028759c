"""Reports and the CI regression on a study filled with known results (no training: claims + records)."""
from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from conftest import fill_study
from ovbench.report import tables
from ovbench.report.cli import build_report
from ovbench.report.frame import study_frame, swept_params
from ovbench.report.plots import pareto_front
from ovbench.sweep import study as st
from ovbench.sweep.spec import load_spec

SPEC = """\
study: rep
base_config: configs/smoke/tiny_fcn.py
space:
  model.decode_head.channels: [8, 16]
  optim_wrapper.optimizer.lr: [0.1, 0.3]
seeds: [0, 1]
datasets: [toy]
work_dir: {work}
"""


def fake_result(point: dict) -> dict:
    """Known numbers: mIoU grows with channels and lr, seed adds +-1."""
    miou = point["model.decode_head.channels"] + 100 * point["optim_wrapper.optimizer.lr"] + (1 if point["seed"] else -1)
    return {"status": "ok", "metrics": {"toy": {"mIoU": miou, "hIoU": miou / 2}},
            "cost": {"trainable_params": 1000 * point["model.decode_head.channels"], "train_time_s": 10.0,
                     "s_per_iter": 0.1, "peak_mem_mb": 500.0, "flops": 1e6},
            "device": "cpu", "git_commit": "abc"}


def result_with_one_failure(point: dict) -> dict:
    if point["model.decode_head.channels"] == 16 and point["optim_wrapper.optimizer.lr"] == 0.3 and point["seed"] == 1:
        return {"status": "failed", "error": "RuntimeError: boom"}
    return fake_result(point)


@pytest.fixture
def filled(tmp_path):
    return fill_study(SPEC, tmp_path, result_with_one_failure)


def test_frame_has_one_row_per_trial_with_metrics_and_cost(filled):
    _, study, _ = filled
    df = study_frame(study)
    assert len(df) == 8 and (df["state"] == "FAIL").sum() == 1
    assert {"toy/mIoU", "toy/hIoU", "trainable_params", "seed", "model.decode_head.channels"} <= set(df.columns)


def test_summary_mean_std_and_best_marked(filled):
    _, study, _ = filled
    params = swept_params(study)
    table = tables.summarize(study_frame(study), params)
    row = table[table["setting"] == "channels=8, lr=0.1"].iloc[0]
    assert row["toy/mIoU"] == pytest.approx(18.0) and row["toy/mIoU:std"] == pytest.approx(math.sqrt(2))
    assert row["n_seeds"] == 2
    only = table[table["setting"] == "channels=16, lr=0.3"].iloc[0]
    assert only["n_seeds"] == 1 and only["toy/mIoU"] == pytest.approx(45.0)  # failed seed left out
    md = tables.render(table, ["toy/mIoU"], "md")
    # 2 seeds 17 and 19: sd sqrt(2), CI half-width t(0.975, 1) * sqrt(2) / sqrt(2) = 12.71
    assert row["toy/mIoU:ci"] == pytest.approx(12.706, abs=1e-3)
    assert "**45.00**" in md and "18.00 ± 12.71" in md and md.count("**") == 2
    assert "\\textbf{45.00}" in tables.render(table, ["toy/mIoU"], "latex")
    assert "<b>45.00</b>" in tables.render(table, ["toy/mIoU"], "html")
    assert "toy/mIoU:std" in tables.render(table, ["toy/mIoU"], "csv").splitlines()[0]
    with_paper = tables.render(table, ["toy/mIoU"], "md", paper={"channels=8, lr=0.1": {"toy/mIoU": 17.5}})
    header, _, first = with_paper.splitlines()[:3]
    assert "paper toy/mIoU" in header and "17.50" in first and "nan" not in with_paper


def test_report_writes_tables_plots_and_lists_failures(filled, tmp_path):
    path, _, _ = filled
    texts = build_report(str(path), ["md", "csv"], tmp_path / "reports")
    out = tmp_path / "reports" / "rep"
    assert "RuntimeError: boom" in texts["md"]
    for name in ("table.md", "table.csv", "trials.csv", "toy_mIoU_vs_channels.png", "toy_mIoU_vs_lr.svg",
                 "toy_mIoU_vs_trainable_params.png", "toy_mIoU_vs_train_time_s.svg"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name


def test_pareto_front():
    x, y = [1, 2, 3, 4], [10, 5, 20, 15]
    assert pareto_front(x, y) == [0, 2]


def test_qualitative_panel_from_saved_predictions(tmp_path):
    from PIL import Image

    from ovbench.report.panels import panel
    import numpy as np
    import pandas as pd

    img, gt, p1, p2 = (tmp_path / f"{n}.png" for n in ("img", "gt", "p1", "p2"))
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(img)
    for path, v in ((gt, 1), (p1, 1), (p2, 2)):
        Image.fromarray(np.full((8, 8), v, np.uint8)).save(path)
    preds = lambda p: {"toy": [{"img_path": str(img), "seg_map_path": str(gt), "pred": str(p)}]}  # noqa: E731
    df = pd.DataFrame([
        {"state": "COMPLETE", "seed": 0, "setting": "a", "predictions": preds(p1)},
        {"state": "COMPLETE", "seed": 1, "setting": "a", "predictions": preds(p2)},  # second seed: not shown
        {"state": "COMPLETE", "seed": 0, "setting": "b", "predictions": preds(p2)},
        {"state": "FAIL", "seed": 0, "setting": "c", "predictions": None},
    ])
    files = panel(df, tmp_path)
    assert files == [tmp_path / "panel_toy.png"]
    w, h = Image.open(files[0]).size
    assert w > h * 3  # image | GT | a | b side by side in one row


def test_report_of_a_changed_file_refuses_the_old_study_or_uses_its_new_study_twin(filled):
    """`ovbench report FILE` must not label an older study's results with the current file."""
    from ovbench.report.frame import open_for_report

    path, study, url = filled
    path.write_text(path.read_text().replace("seeds: [0, 1]", "seeds: [0]"))
    with pytest.raises(st.StudyMismatch, match="another version of this file"):
        open_for_report(str(path))
    spec = load_spec(path)  # run with --new-study: the twin study is the file's
    twin = st.open_study(spec, st.open_storage(url), st.study_name_for(spec, new_study=True))
    opened = open_for_report(str(path)).study
    assert opened.study_name == twin.study_name != study.study_name
    assert open_for_report(study.study_name, work_dir=str(Path(url[len("sqlite:///"):]).parent))[0].study_name == "rep"


def test_report_records_its_study_and_refuses_another_studys_folder(filled, tmp_path, capsys):
    """A committed reports/<study>/ is never silently replaced by a same-named study of another storage."""
    from ovbench.report.manifest import MANIFEST, ReportOverwrite

    path, _, url = filled
    out_root = tmp_path / "reports"
    build_report(str(path), ["md"], out_root, plots_on=False)
    out = out_root / "rep"
    record = json.loads((out / MANIFEST).read_text())
    written = ["summary.html", "summary.md", "table.md", "trials.csv"]
    assert record["study"] == "rep" and record["storage"] == url and record["files"] == written
    assert f"-> {out}/: table.md, trials.csv, summary.md, summary.html" in capsys.readouterr().err  # says what

    build_report(str(path), ["md"], out_root)  # the same study again: rewritten, plots added to the record
    assert "toy_mIoU_vs_lr.png" in json.loads((out / MANIFEST).read_text())["files"]

    (tmp_path / "elsewhere").mkdir()
    other_path, _, other_url = fill_study(SPEC, tmp_path / "elsewhere", fake_result)  # same name, other storage
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with pytest.raises(ReportOverwrite, match=f"holds study 'rep' in {url}.*this report is of study 'rep' in "
                                              f"{other_url}.*--force"):
        build_report(str(other_path), ["md"], out_root, plots_on=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # nothing written, nothing removed

    (out / "notes.md").write_text("hand-written analysis")
    build_report(str(other_path), ["md"], out_root, plots_on=False, force=True)
    record = json.loads((out / MANIFEST).read_text())
    assert record["storage"] == other_url and record["files"] == written
    assert not list(out.glob("*_vs_*")), "the replaced report's plots must go with it"
    assert (out / "notes.md").read_text() == "hand-written analysis"  # files no report wrote are kept
    assert "RuntimeError: boom" not in (out / "table.md").read_text()  # the other study has no failure


def test_report_refuses_a_folder_with_an_unrecorded_report(filled, tmp_path, capsys):
    from ovbench.cli import main

    path, _, _ = filled
    out = tmp_path / "reports" / "rep"
    out.mkdir(parents=True)
    (out / "notes.md").write_text("notes only: not a report")
    build_report(str(path), ["md"], tmp_path / "reports", plots_on=False)  # no report files: fine
    (out / "report.json").unlink()
    capsys.readouterr()
    assert main(["report", str(path), "--out", str(tmp_path / "reports"), "--no-plots"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no record of its study" in err and "--force" in err
    assert main(["report", str(path), "--out", str(tmp_path / "reports"), "--no-plots", "--force"]) == 0
    assert (out / "report.json").is_file()


def test_a_null_option_of_the_space_is_labelled_none_and_the_other_options_keep_their_type():
    """``model.train_classes: [null, 32]``: pandas stores the column as floats with NaN; the labels must read
    ``None`` and ``32``, as the ablation file's ``reference:`` and the run's log spell them."""
    import pandas as pd

    df = pd.DataFrame({"model.train_classes": [None, None, 32, 32], "model.lr": [0.5, 0.5, 0.5, 0.5],
                       "seed": [0, 1, 0, 1]})
    assert tables.trial_labels(df, ["model.train_classes"]) == ["train_classes=None"] * 2 + ["train_classes=32"] * 2
    assert tables.trial_labels(df, ["model.lr"]) == ["lr=0.5"] * 4
    assert tables.trial_labels(pd.DataFrame({"k": [1.5, None]}), ["k"]) == ["k=1.5", "k=None"]


def test_metric_plot_of_a_space_with_a_null_option_names_it_none(tmp_path):
    import pandas as pd

    from ovbench.report import plots

    table = pd.DataFrame({"model.train_classes": pd.Series([None, 32, None, 32], dtype=object),
                          "model.peft": ["frozen", "frozen", "hclip", "hclip"],
                          "m": [17.1, 16.6, 26.7, 26.5], "m:ci": [1.3, 0.9, 1.4, 3.2]})
    files = plots.metric_vs_param(table, ["model.train_classes", "model.peft"], "m", tmp_path)
    svg = (tmp_path / "m_vs_train_classes.svg").read_text()
    assert len(files) == 4
    assert "<!-- None -->" in svg and "<!-- 32 -->" in svg  # the tick labels (matplotlib names each text)


def test_a_report_that_stops_half_way_leaves_a_record_so_it_can_be_run_again(filled, tmp_path, monkeypatch):
    """A plot error after the tables were written must not leave a folder that later refuses its own study
    as 'a report with no record', nor one that another study may overwrite."""
    from ovbench.report import plots
    from ovbench.report.manifest import MANIFEST, ReportOverwrite

    path, _, url = filled
    out_root = tmp_path / "reports"
    out = out_root / "rep"

    def broken(*args, **kwargs):
        raise TypeError("a plot failed")

    monkeypatch.setattr(plots, "all_plots", broken)
    with pytest.raises(TypeError, match="a plot failed"):
        build_report(str(path), ["md"], out_root)
    record = json.loads((out / MANIFEST).read_text())
    assert (out / "table.md").is_file() and record["study"] == "rep" and record["complete"] is False
    (tmp_path / "elsewhere").mkdir()
    other_path, _, _ = fill_study(SPEC, tmp_path / "elsewhere", fake_result)
    with pytest.raises(ReportOverwrite, match="incomplete"):
        build_report(str(other_path), ["md"], out_root, plots_on=False)

    monkeypatch.undo()
    (out / "toy_mIoU_vs_gone.png").write_bytes(b"left by an older run of this report")
    build_report(str(path), ["md"], out_root)  # the same study: no --force needed
    record = json.loads((out / MANIFEST).read_text())
    assert record["complete"] is True and "toy_mIoU_vs_lr.png" in record["files"]
    assert not (out / "toy_mIoU_vs_gone.png").exists()
