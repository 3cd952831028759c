"""`ovbench train` / `ovbench test` / `ovbench params`: wrong inputs give one error line (usage errors
exit 2 through argparse), and `ovbench train` reads its data from the data root as `ovbench test` does."""
from __future__ import annotations

import pytest

from conftest import REPO_ROOT, SMOKE_CONFIG
from ovbench.cli import main


def error_text(capsys) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err


@pytest.mark.parametrize("command", ["train", "test"])
def test_cfg_options_item_without_equals_is_a_usage_error(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        main([command, str(SMOKE_CONFIG), "--cfg-options", "train_cfg.max_iters=2", "foo"])
    assert exit_.value.code == 2
    assert "--cfg-options: expected KEY=VALUE" in error_text(capsys)


@pytest.mark.parametrize("seed", ["-1", "4294967296", "x"])
def test_seed_outside_what_the_libraries_accept_is_a_usage_error(seed, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", str(SMOKE_CONFIG), "--seed", seed])
    assert exit_.value.code == 2
    assert "--seed: expected an integer in [0, 4294967295]" in error_text(capsys)


@pytest.mark.parametrize("name, content, needle", [
    ("missing.py", None, "config file not found"),
    ("notes.md", "# not a config\n", "config cannot be loaded: OSError"),
    ("broken.py", "x = (\n", "config cannot be loaded: SyntaxError"),
])
@pytest.mark.parametrize("command", [["train"], ["test"], ["params"]])
def test_a_config_that_cannot_be_read_names_the_file(command, name, content, needle, tmp_path, capsys):
    config = tmp_path / name
    if content is not None:
        config.write_text(content)
    assert main(command + [str(config)]) == 2
    err = error_text(capsys)
    assert err.startswith("error: ") and str(config) in err and needle in err


def test_resume_from_a_file_that_is_not_a_checkpoint_fails_before_the_work_dir(tmp_path, capsys):
    not_a_checkpoint = tmp_path / "notes.txt"
    not_a_checkpoint.write_text("hello")
    work = tmp_path / "wd"
    assert main(["train", str(SMOKE_CONFIG), "--work-dir", str(work), "--resume", str(not_a_checkpoint)]) == 2
    err = error_text(capsys)
    assert "is not a checkpoint that can be loaded safely" in err and "weights_only" not in err
    assert not work.exists()
    assert main(["train", str(SMOKE_CONFIG), "--work-dir", str(work), "--resume", str(tmp_path / "no.pth")]) == 2
    assert "checkpoint not found" in error_text(capsys)


def test_train_reads_its_data_under_the_data_root(tmp_path, monkeypatch):
    """The smoke config says data/toy-v2: with --data-root the toy set is generated there and training runs
    from any working directory, as `ovbench test` and the sweep's trials find their data."""
    monkeypatch.chdir(tmp_path)  # no ./data here
    root, work = tmp_path / "elsewhere", tmp_path / "wd"
    assert main(["train", str(SMOKE_CONFIG), "--work-dir", str(work), "--data-root", str(root),
                 "--cfg-options", "train_cfg.max_iters=2", "train_cfg.val_interval=100",
                 "default_hooks.checkpoint.interval=2"]) == 0
    assert (root / "toy-v2" / "vocabulary.json").is_file()
    assert (work / "iter_2.pth").is_file()
    assert not (tmp_path / "data").exists()


def test_train_with_a_missing_dataset_names_it_before_building_anything(tmp_path, capsys):
    work = tmp_path / "wd"
    assert main(["train", str(SMOKE_CONFIG), "--work-dir", str(work), "--data-root", str(tmp_path),
                 "--cfg-options", "train_dataloader.dataset.data_root=data/not_downloaded"]) == 2
    err = error_text(capsys)
    assert "dataset train_dataloader: folder not found" in err and str(tmp_path / "not_downloaded") in err
    assert not work.exists()


@pytest.mark.parametrize("argv, needle", [
    (["--model", "ViT-B-61"], "unknown open_clip architecture 'ViT-B-61'; did you mean ViT-B-16"),
    (["--model", "ViT-B-16", "--peft", "{bad"], "--peft: not JSON"),
    (["--model", "ViT-B-16", "--peft", "[1]"], "--peft: expected a JSON object or a method name, got list"),
])
def test_params_wrong_model_or_peft_is_one_error_line(argv, needle, capsys):
    assert main(["params"] + argv) == 2
    assert needle in error_text(capsys)


def test_params_accepts_open_clips_spellings_and_a_method_name(capsys):
    assert main(["params", "--model", "ovbench-tiny-vit", "--peft", "lora", "--json"]) == 0
    assert '"trainable"' in capsys.readouterr().out
    assert main(["params", "--model", "ViT-B/16"]) == 0  # open_clip reads ViT-B/16 as ViT-B-16
    assert "63,428,096" in capsys.readouterr().out  # ViT-B/16's text tower


def test_train_reads_a_wrapped_training_set_and_names_a_missing_part(toy_dataset, tmp_path, capsys):
    """ConcatDataset / RepeatDataset wrap the sets they read: the check looks inside them (a wrapper is no
    layout of files), so such a config trains as before and a missing part is named by its place."""
    inner = dict(type="OVSegDataset", data_root=str(toy_dataset), vocabulary="vocabulary.json",
                 data_prefix=dict(img_path="img_dir/train", seg_map_path="ann_dir/train"))
    wrapped = dict(type="RepeatDataset", times=2,
                   dataset=dict(type="ConcatDataset", datasets=[inner, {**inner, "data_root": str(tmp_path / "gone")}]))
    config = tmp_path / "wrapped.py"
    config.write_text(f"_base_ = [{str(SMOKE_CONFIG)!r}]\n"
                      f"train_dataloader = dict(dataset=dict(_delete_=True, **{wrapped!r}))\n")
    assert main(["train", str(config), "--work-dir", str(tmp_path / "wd"),
                 "--cfg-options", "train_cfg.max_iters=1", "train_cfg.val_interval=100"]) == 2
    err = error_text(capsys)
    assert f"dataset train_dataloader.dataset.datasets[1]: folder not found: {tmp_path / 'gone'}" in err
    assert "datasets[0]" not in err and "pipeline" not in err
    from ovbench.data.check import check_datasets

    check_datasets({"train": dict(type="RepeatDataset", times=2,
                                  dataset=dict(type="ConcatDataset", datasets=[inner, inner]))})  # no error


def test_an_unknown_evaluation_set_is_one_plain_line(capsys):
    assert main(["test", str(SMOKE_CONFIG), "--datasets", "nope"]) == 2
    err = error_text(capsys)
    assert err.startswith("error: unknown evaluation set(s) ['nope']") and not err.startswith('error: "')


def test_a_peft_value_the_model_cannot_take_is_one_line_with_exit_2(tmp_path, capsys):
    """PEFT config errors are input errors (PeftConfigError), also when only the model's build finds them."""
    from ovbench.peft import PeftConfigError, build_peft_config

    with pytest.raises(PeftConfigError, match="peft.type: unknown method 'nope'") as info:
        build_peft_config({"type": "nope"})
    assert isinstance(info.value, KeyError) and str(info.value).startswith("peft.type")  # no KeyError quotes
    for command in (["train"], ["test"]):
        assert main(command + [str(REPO_ROOT / "configs/synth/hclip.py"), "--work-dir", str(tmp_path / "wd"),
                               "--cfg-options", "model.clip.peft.q=17"]) == 2
        err = error_text(capsys)
        assert "the model cannot be built: model.clip: PeftConfigError: peft.q (hclip): block size 17 does not " \
               "divide the image width 128" in err
        assert not (tmp_path / "wd").exists()  # checked on the meta device before the runner writes its log


def test_an_image_without_its_label_past_the_first_is_found_before_anything_trains(toy_dataset, tmp_path, capsys):
    """The check decodes the first label and then lists the set as it will be read, so one missing label
    anywhere fails `ovbench test` (and `train`, `run`) up front with exit 2, not in the middle of evaluation."""
    import shutil

    data = tmp_path / "root" / "toy-v2"  # the smoke config's data/toy-v2, under --data-root
    shutil.copytree(toy_dataset, data)
    last = sorted((data / "ann_dir" / "val").iterdir())[-1]
    last.unlink()
    assert main(["test", str(SMOKE_CONFIG), "--work-dir", str(tmp_path / "wd"),
                 "--data-root", str(tmp_path / "root")]) == 2
    err = error_text(capsys)
    assert "1 image(s)" in err and "have no label" in err and last.stem in err
    assert not (tmp_path / "wd").exists()
