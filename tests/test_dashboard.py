"""A study as optuna-dashboard shows it: a named objective, one numeric attribute per metric and
cost figure, and the training loss as intermediate values (the learning curve), read back
through optuna's public API. The end-to-end check on real trials is tests/test_postgres.py."""
from __future__ import annotations

from pathlib import Path

import optuna

from ovbench.report.frame import study_frame
from ovbench.sweep import study as st
from ovbench.sweep.curves import LossCurve, parse_losses
from ovbench.sweep.spec import load_spec

SPEC = """\
study: dash
base_config: configs/smoke/tiny_fcn.py
space:
  model.decode_head.channels: [4, 8]
seeds: [0]
datasets: [toy]
work_dir: {work}
"""
LINE = "12/02 15:44:58 - mmengine - INFO - Iter(train) [{i}/3]  lr: 1.0e-02  eta: 0:00:01  time: 0.2  loss: {loss}  " \
       "decode.loss_ce: {loss}\n"


def test_objective_named_metrics_numeric_and_loss_curve(tmp_path):
    path = tmp_path / "dash.yaml"
    path.write_text(SPEC.format(work=tmp_path / "work"))
    spec = load_spec(path)
    url = st.default_storage_url(tmp_path / "work")
    storage = st.open_storage(url)
    study = st.open_study(spec, storage, spec.study)
    claim = st.claim_next(study, spec, tmp_path / "work", st.Owner.me(), set(), grace_s=60)
    log = Path(claim.work_dir) / "trial.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(LINE.format(i=1, loss=2.5) + "noise\n" + LINE.format(i=2, loss=2.25) + LINE.format(i=3, loss=2)[:40])
    curve = LossCurve(storage, claim.trial_id, log)
    assert curve.report() == 2  # the half-written third line waits for the next look
    with open(log, "a") as fh:
        fh.write(LINE.format(i=3, loss=2.0)[40:])
    assert curve.report() == 1
    result = {"status": "ok", "metrics": {"toy": {"mIoU": 42.5, "mIoU_unseen": 30.0}},
              "cost": {"trainable_params": 1234, "train_time_s": 1.5, "device": "cpu"}}
    assert st.record_result(study, claim.trial, result, spec.objective_metric)[0].name == "COMPLETE"

    loaded = optuna.load_study(storage=url, study_name="dash")
    assert loaded.metric_names == ["toy/mIoU"]
    trial = loaded.get_trials()[0]
    assert trial.value == 42.5 and trial.intermediate_values == {1: 2.5, 2: 2.25, 3: 2.0}
    for key, value in {"toy/mIoU": 42.5, "toy/mIoU_unseen": 30.0, "trainable_params": 1234, "train_time_s": 1.5}.items():
        assert trial.user_attrs[key] == value and isinstance(trial.user_attrs[key], (int, float)), key
    assert "device" not in trial.user_attrs or not isinstance(trial.user_attrs["device"], (int, float))
    frame = study_frame(loaded)  # the report layer reads the same trial unchanged
    assert frame.loc[0, "toy/mIoU"] == 42.5 and frame.loc[0, "trainable_params"] == 1234


def test_parse_losses_skips_non_finite_and_other_lines():
    text = (LINE.format(i=5, loss=1.5) + LINE.format(i=6, loss="nan") + "Iter(val) [1/4]  loss: 9\n").encode()
    assert parse_losses(text) == {5: 1.5}
