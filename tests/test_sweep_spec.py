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


def test_dataset_names_come_from_the_configs_eval_datasets(tmp_path):
    """The synthetic sets are names of configs/synth's eval_datasets, as real sets are of the real configs'."""
    text = GOOD.replace("configs/smoke/tiny_fcn.py", "configs/synth/hclip.py").replace(
        "  model.decode_head.channels: [8, 16]\n  optim_wrapper.optimizer.lr: [0.01, 0.05]\n",
        "  model.clip.peft.q: [16, 32]\n").replace(
        "datasets: [toy]", "datasets: [synth_large, synth_small]").replace("toy/mIoU", "synth_small/hIoU")
    spec = load_spec(write(tmp_path, text))
    assert spec.datasets == ["synth_large", "synth_small"] and spec.objective_metric == "synth_small/hIoU"
    err = errors(tmp_path, text.replace("synth_large, synth_small", "synth_large, ade847"))
    assert any(p.key == "datasets" and "unknown dataset 'ade847'" in p.message and "synth_medium_shift" in p.message
               for p in err.problems)


def test_real_scale_runs_real_config_with_the_real_keys():
    embedded = load_spec("ablations/block_size.yaml")
    real = load_spec("ablations/block_size.yaml", scale="real")
    assert (real.scale, real.study) == ("real", "block_size-real")
    assert real.base_config == embedded.real_config == "configs/hclip/hclip_vitb16_coco-stuff171_384.py"
    assert real.datasets == ["ade847", "pc459", "ade150", "pc59", "voc20", "voc20b"]
    assert real.space["model.clip.peft.q"].options() == (32, 64, 128, 256)
    assert real.overrides == embedded.overrides  # keys not under real: are the file's
    assert real.content_hash != embedded.content_hash


def test_real_scale_problems_name_the_real_block_and_its_lines(tmp_path):
    text = GOOD + "real_config: configs/hclip/hclip_vitb16_coco-stuff171_384.py\nreal:\n  datasets: [ade847, toy]\n" \
        "  objective: {metric: ade847/mIoU}\n  space: {model.clip.peft.q: [64]}\n  base_config: x.py\n"
    err = errors(tmp_path, text)  # embedded scale: only real:'s keys are checked
    assert [(p.key, p.line) for p in err.problems] == [("real.base_config", 17)]
    p = write(tmp_path, text.replace("  base_config: x.py\n", ""))
    with pytest.raises(SpecError) as info:
        load_spec(p, scale="real")
    (problem,) = info.value.problems  # toy is not an eval set of the real config; the line is real:'s
    assert problem.key == "datasets" and "unknown dataset 'toy'" in problem.message and problem.line == 14
    with pytest.raises(SpecError, match="real_config: missing; --scale real runs the file's real_config"):
        load_spec(write(tmp_path, GOOD), scale="real")


# ----------------------------------------------------------------------------- issue 16: more malformed kinds

TPE = GOOD.replace("study: t\n", "study: t\nsampler: tpe\nn_trials: 3\n").replace(
    "[0.01, 0.05]", "{low: 0.001, high: 0.1}")  # line 6: channels, line 7: the lr range


@pytest.mark.parametrize(
    "base,old,new,key,needle,line",
    [
        # study names that would escape the work dir / report folder or collide with a lock study
        (GOOD, "study: t", "study: ../x", "study", "it names folders", 1),
        (GOOD, "study: t", "study: '.'", "study", "it names folders", 1),
        (GOOD, "study: t", "study: '..'", "study", "it names folders", 1),
        (GOOD, "study: t", "study: a/b", "study", "it names folders", 1),
        (GOOD, "study: t", "study: t.ovbench-lock", "study", "may not end with '.ovbench-lock'", 1),
        (GOOD, "study: t", "study: " + "x" * 101, "study", "1-100 letters", 1),
        # duplicate keys: YAML keeps the last one silently
        (GOOD, "seeds: [0, 1]\n", "seeds: [0, 1]\nseeds: [3]\n", "seeds", "duplicate key", 7),
        (GOOD, "  model.decode_head.channels: [8, 16]\n",
         "  model.decode_head.channels: [8, 16]\n  model.decode_head.channels: [4]\n",
         "space.model.decode_head.channels", "duplicate key", 5),
        # entries of the wrong shape
        (GOOD, "datasets: [toy]", "datasets: [{toy: 1}]", "datasets", "list of dataset names", 7),
        # datasets name entries of the config's eval_datasets (no registry of the sweep's own)
        (GOOD, "datasets: [toy]", "datasets: [ade847]", "datasets", "unknown dataset 'ade847'; expected one of "
         "the config's eval_datasets: toy", 7),
        (GOOD, "datasets: [toy]", "datasets: [toy]\ntrain_dataset: toy", "train_dataset", "unknown key", 8),
        (GOOD, "datasets: [toy]", "datasets: [toy, toy]", "datasets", "duplicate dataset", 7),
        (GOOD, "executor: {type: local, workers: 1}", "executor: {type: local, workers: 1}\nwork_dir: [a]",
         "work_dir", "expected a string", 12),
        # ranges: bounds, step, log, type
        (TPE, "high: 0.1", "high: .inf", "space.optim_wrapper.optimizer.lr", "finite numbers",7),
        (TPE, "low: 0.001", "low: .nan", "space.optim_wrapper.optimizer.lr", "finite numbers",7),
        (TPE, "high: 0.1}", "high: 0.1, step: 0}", "space.optim_wrapper.optimizer.lr.step", "positive number",7),
        (TPE, "high: 0.1}", "high: 0.1, step: -0.01}", "space.optim_wrapper.optimizer.lr.step", "positive number",7),
        (TPE, "high: 0.1}", "high: 0.1, step: fine}", "space.optim_wrapper.optimizer.lr.step", "positive number",7),
        (TPE, "high: 0.1}", "high: 0.1, log: true, step: 0.01}", "space.optim_wrapper.optimizer.lr.step",
         "cannot have a step", 7),
        (TPE, "high: 0.1}", "high: 0.1, log: 'no'}", "space.optim_wrapper.optimizer.lr.log", "true or false",7),
        (TPE, "[8, 16]", "{low: 4.5, high: 16, type: int}", "space.model.decode_head.channels",
         "integer 'low' and 'high'", 6),
        (TPE, "[8, 16]", "{low: 4, high: 16, step: 2.5}", "space.model.decode_head.channels.step",
         "positive integer", 6),
        # NaN / infinity, seeds out of numpy's range
        (GOOD, "[0.01, 0.05]", "[0.01, .nan]", "space.optim_wrapper.optimizer.lr", "NaN value", 5),
        (GOOD, "[0.01, 0.05]", "[0.01, -.inf]", "space.optim_wrapper.optimizer.lr", "infinite value", 5),
        (GOOD, "train_cfg.max_iters: 4", "optim_wrapper.optimizer.lr: .inf", "overrides.optim_wrapper.optimizer.lr",
         "infinite value", 10),
        (GOOD, "train_cfg.max_iters: 4", "train_cfg.max_iters: .nan", "overrides.train_cfg.max_iters", "NaN value", 10),
        (GOOD, "seeds: [0, 1]", "seeds: [-1, 1]", "seeds", "0..2**32-1", 6),
        (GOOD, "seeds: [0, 1]", "seeds: [4294967296]", "seeds", "0..2**32-1", 6),
        (TPE, "n_trials: 3", "n_trials: 3\nsampler_seed: -5", "sampler_seed", "0..2**32-1", 4),
        # executor: a timeout that never fires, a thread storm
        (GOOD, "workers: 1}", "workers: 1, timeout_min: .nan}", "executor.timeout_min", "positive finite", 11),
        (GOOD, "workers: 1}", "workers: 1, timeout_min: .inf}", "executor.timeout_min", "positive finite", 11),
        (GOOD, "workers: 1}", "workers: 10000}", "executor.workers", "up to 256", 11),
        # an objective the model's evaluators cannot produce (tiny_fcn evaluates mIoU only)
        (GOOD, "toy/mIoU", "toy/PQ", "objective.metric", "does not yield PQ", 8),
        # null where a value is needed
        (GOOD, "base_config: configs/smoke/tiny_fcn.py", "base_config: null", "base_config", "got null", 2),
        (GOOD, "datasets: [toy]", "datasets: ~", "datasets", "got null", 7),
        (GOOD, "executor: {type: local, workers: 1}", "executor: null", "executor", "got null", 11),
        (GOOD, "train_cfg.max_iters: 4", "train_cfg.max_iters: null", "overrides.train_cfg.max_iters", "wrong type", 10),
        (GOOD, "[8, 16]", "[8, null]", "space.model.decode_head.channels", "wrong type", 4),
        # storage URLs that cannot be opened
        (GOOD, "datasets: [toy]", "datasets: [toy]\nstorage: sqlite//x.db", "storage", "not a storage URL", 8),
        (GOOD, "datasets: [toy]", "datasets: [toy]\nstorage: mongodb://h/db", "storage", "unsupported scheme", 8),
        (GOOD, "datasets: [toy]", "datasets: [toy]\nstorage: 'sqlite://'", "storage", "in-memory", 8),
    ],
)
def test_more_malformed_kinds(tmp_path, base, old, new, key, needle, line):
    assert old in base
    err = errors(tmp_path, base.replace(old, new, 1))
    hits = [p for p in err.problems if p.key == key]
    assert hits, f"no problem for {key}: {err}"
    assert needle in hits[0].message, hits[0]
    assert hits[0].line == line


def test_tpe_base_of_the_range_kinds_is_valid(tmp_path):
    spec = load_spec(write(tmp_path, TPE))
    assert spec.space["optim_wrapper.optimizer.lr"].kind == "float" and spec.n_points() == 3


def whole_file_error(path: Path) -> str:
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_binary_and_utf16_files_are_refused(tmp_path):
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"study: t\n\x89PNG\r\n\x1a\n\xff\xfe\x00")
    assert "not UTF-8 text" in whole_file_error(binary) and ":2:" in whole_file_error(binary)
    utf16 = tmp_path / "u16.yaml"
    utf16.write_bytes(GOOD.encode("utf-16"))
    assert "not UTF-8 text" in whole_file_error(utf16)


def test_alias_bomb_is_bounded_not_expanded(tmp_path):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(GOOD + "paper:\n" + "".join(f"  {line}\n" for line in lines))  # 10**10 values once expanded
    assert bomb.stat().st_size < 2000
    assert "expands to more than 100000 values" in whole_file_error(bomb)


def test_recursive_alias_and_deep_nesting_are_refused(tmp_path):
    rec = tmp_path / "rec.yaml"
    rec.write_text(GOOD + "paper: &p {self: *p}\n")
    assert "contains itself" in whole_file_error(rec)
    deep = tmp_path / "deep.yaml"
    deep.write_text(GOOD + "paper: " + "[" * 5000 + "]" * 5000 + "\n")
    assert "nested too deeply" in whole_file_error(deep)


def test_huge_file_directory_and_missing_file(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text(GOOD + "description: '" + "x" * (1 << 20) + "'\n")
    assert "at most 1048576 bytes" in whole_file_error(big)
    folder = tmp_path / "dir.yaml"
    folder.mkdir()
    assert "not a regular file" in whole_file_error(folder)
    assert "not found" in whole_file_error(tmp_path / "nope.yaml")


def test_base_config_that_exits_is_a_problem_not_an_exit(tmp_path):
    cfg = tmp_path / "exits.py"
    cfg.write_text("import sys\nsys.exit(7)\n")
    err = errors(tmp_path, GOOD.replace("configs/smoke/tiny_fcn.py", str(cfg)))
    (hit,) = [p for p in err.problems if p.key == "base_config"]
    assert "SystemExit" in hit.message and hit.line == 2


def test_default_study_name_from_a_dot_stem_is_refused(tmp_path):
    path = tmp_path / "..yaml"
    path.write_text(GOOD.replace("study: t\n", ""))
    assert "the default is the file's stem" in whole_file_error(path)


def test_nan_in_named_choices(tmp_path):
    text = GOOD.replace("[0.01, 0.05]", "{named: {small: 0.01, broken: .nan}}")
    err = errors(tmp_path, text)
    assert any(p.key == "space.optim_wrapper.optimizer.lr.named" and "NaN" in p.message for p in err.problems)


def test_infinity_is_allowed_where_the_base_config_has_one():
    spec = load_spec("ablations/orth_weight.yaml")  # orth_lambda: .inf means hard orthogonality
    assert "hard" in spec.space["model.clip.peft.orth_lambda"].options()


def test_null_disables_a_component_but_not_a_number(tmp_path):
    # None may replace a dict (drop a component), as mmengine configs do
    spec = load_spec(write(tmp_path, GOOD.replace("train_cfg.max_iters: 4", "model.train_cfg: null")))
    assert spec.overrides == {"model.train_cfg": None}
