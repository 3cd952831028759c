"""Ablation-file validation: every malformed kind gives an error naming file, key/line and the fix."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from ovbench.sweep.spec import SpecError, load_spec

GOOD = """\
study: t
base_config: configs/smoke/tiny_fcn.py
space:
  model.decode_head.channels: [8, 16]
  optim_wrapper.optimizer.lr: [0.01, 0.05]
seeds: [0, 1]
datasets: [toy]
objective: {metric: toy/mIoU, direction: maximize}
overrides:
  train_cfg.max_iters: 4
executor: {type: local, workers: 1}
"""


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "abl.yaml"
    p.write_text(textwrap.dedent(text))
    return p


def errors(tmp_path: Path, text: str) -> SpecError:
    p = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_spec(p)
    msg = str(info.value)
    assert str(p) in msg  # every error names the file
    return info.value


def test_good_file_loads_with_grid_and_stable_hash(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.study == "t"
    assert len(spec.grid_points()) == 2 * 2 * 2
    assert spec.grid_points()[0] == {"model.decode_head.channels": 8, "optim_wrapper.optimizer.lr": 0.01, "seed": 0}
    # executor changes do not change the study; a changed space does
    same = load_spec(write(tmp_path, GOOD.replace("workers: 1", "workers: 2")))
    assert same.content_hash == spec.content_hash
    other = load_spec(write(tmp_path, GOOD.replace("[8, 16]", "[8, 32]")))
    assert other.content_hash != spec.content_hash


@pytest.mark.parametrize(
    "old,new,key,needle,line",
    [
        ("study: t\n", "study: t\nsamplr: grid\n", "samplr", "did you mean 'sampler'", 2),  # unknown key
        ("model.decode_head.channels", "model.decode_head.chanels", "space.model.decode_head.chanels",
         "does not exist in the base config", 4),  # missing dotted key
        ("[8, 16]", "[8, 'wide']", "space.model.decode_head.channels", "wrong type", 4),  # wrong type
        ("  model.decode_head.channels: [8, 16]\n  optim_wrapper.optimizer.lr: [0.01, 0.05]\n", "  {}\n",
         "space", "empty search space", 3),  # empty space
        ("[8, 16]", "[]", "space.model.decode_head.channels", "empty list", 4),  # empty value list
        ("datasets: [toy]", "datasets: [ade20k-nope]", "datasets", "unknown dataset 'ade20k-nope'", 7),
        ("study: t\n", "study: t\nsampler: bayes\n", "sampler", "unknown sampler 'bayes'", 2),
        ("type: local", "type: kubernetes", "executor.type", "unknown executor 'kubernetes'", 11),
        ("seeds: [0, 1]", "seeds: [zero]", "seeds", "non-empty list of integers", 6),
        ("toy/mIoU", "toy/accuracy", "objective.metric", "unknown metric 'toy/accuracy'", 8),
        ("train_cfg.max_iters: 4", "train_cfg.max_iters: four", "overrides.train_cfg.max_iters", "wrong type", 10),
        ("configs/smoke/tiny_fcn.py", "configs/nope.py", "base_config", "config file not found", 2),
        ("[8, 16]", "{low: 8, high: 16}", "space.model.decode_head.channels", "grid needs an explicit list", 4),
        ("[8, 16]", "[8, 8]", "space.model.decode_head.channels", "duplicate values", 4),
        ("workers: 1", "workers: -3", "executor.workers", "non-negative integer", 11),
    ],
)
def test_malformed_kinds_name_key_line_and_expectation(tmp_path, old, new, key, needle, line):
    assert old in GOOD
    err = errors(tmp_path, GOOD.replace(old, new))
    hits = [p for p in err.problems if p.key == key]
    assert hits, f"no problem for {key}: {err}"
    assert needle in hits[0].message
    assert hits[0].line == line


def test_all_problems_reported_at_once(tmp_path):
    bad = GOOD.replace("study: t\n", "study: t\nfoo: 1\n").replace("[toy]", "[nope]").replace("seeds: [0, 1]", "seeds: x")
    err = errors(tmp_path, bad)
    keys = {p.key for p in err.problems}
    assert {"foo", "datasets", "seeds"} <= keys


def test_missing_required_and_bad_yaml_and_non_mapping(tmp_path):
    err = errors(tmp_path, "study: t\n")
    assert {"base_config", "space", "datasets"} <= {p.key for p in err.problems}
    err = errors(tmp_path, "space: [a, b\nseeds: 1\n")
    assert "not valid YAML" in str(err) and err.problems[0].line is not None
    err = errors(tmp_path, "- a\n- b\n")
    assert "mapping of keys at the top level" in str(err)


def test_tpe_needs_n_trials_and_accepts_ranges(tmp_path):
    text = GOOD.replace("study: t\n", "study: t\nsampler: tpe\n").replace(
        "[0.01, 0.05]", "{low: 0.001, high: 0.1, log: true}")
    err = errors(tmp_path, text)
    assert any(p.key == "n_trials" for p in err.problems)
    spec = load_spec(write(tmp_path, text + "n_trials: 3\n"))
    assert spec.space["optim_wrapper.optimizer.lr"].kind == "float" and spec.n_trials == 3


def test_named_choices_and_keys_inside_an_override(tmp_path):
    text = GOOD.replace("  model.decode_head.channels: [8, 16]\n", "  model.decode_head.norm_cfg.eps: [0.001]\n"
                        "  model.decode_head.loss_decode:\n    named: {ce: {loss_weight: 1.0}, ce2: {loss_weight: 2.0}}\n")
    # norm_cfg.eps exists only once an override adds it
    err = errors(tmp_path, text)
    assert any(p.key == "space.model.decode_head.norm_cfg.eps" for p in err.problems)
    spec = load_spec(write(tmp_path, text.replace("  train_cfg.max_iters: 4\n",
                                                  "  train_cfg.max_iters: 4\n  model.decode_head.norm_cfg: {type: BN, eps: 0.1}\n")))
    loss = spec.space["model.decode_head.loss_decode"]
    assert loss.options() == ("ce", "ce2")
    point = spec.grid_points()[-1]
    assert point["model.decode_head.loss_decode"] == "ce2"
    assert spec.config_params(point)["model.decode_head.loss_decode"] == {"loss_weight": 2.0}


def test_synthetic_benchmark_sets_are_known_names(tmp_path):
    text = GOOD.replace("datasets: [toy]", "datasets: [synth_large, synth_small]").replace("toy/mIoU", "synth_small/hIoU")
    spec = load_spec(write(tmp_path, text))
    assert spec.datasets == ["synth_large", "synth_small"] and spec.objective_metric == "synth_small/hIoU"
