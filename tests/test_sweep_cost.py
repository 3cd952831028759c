"""Cost accounting of a trial: free parameters of orthogonal PEFT blocks are fewer than stored ones."""
from __future__ import annotations

from pathlib import Path

from mmengine.config import Config
from mmengine.registry import init_default_scope

from ovbench.sweep.trial import constrained_params


def build(peft: dict):
    from mmseg.registry import MODELS

    init_default_scope("mmseg")
    cfg = Config.fromfile("configs/smoke/tiny_catseg.py")
    cfg.model.clip.peft = peft
    return MODELS.build(cfg.model)


def test_hclip_free_parameters_count_skew_symmetric_blocks_once():
    # text width 64, q=16 -> 4 blocks per site; a block stores 16*16 and has 16*15/2 free values;
    # 4 attention sites x 2 text layers are orthogonal (orth='text')
    model = build(dict(type="hclip", q=16, orth="text", dcrc="paper"))
    assert constrained_params(model) == 2 * 4 * 4 * (16 * 16 - 16 * 15 // 2)
    assert constrained_params(build(dict(type="lora", r=4))) == 0


def test_panel_predictions_use_each_sets_own_vocabulary(tmp_path):
    """No Runner hook runs while a trial saves its panel predictions: the model must be given each
    set's vocabulary, or a large set would be predicted over the last-evaluated small one."""
    import json
    import shutil

    import numpy as np
    import torch
    from mmengine.structures import PixelData
    from PIL import Image

    from ovbench.data.toy import write_toy_dataset
    from ovbench.sweep.trial import save_predictions

    small = write_toy_dataset(tmp_path / "small")
    large = tmp_path / "large"
    shutil.copytree(small, large)
    vocab = json.loads((large / "vocabulary.json").read_text())
    vocab["classes"] = vocab["classes"] + ["green star", "red moon"]
    vocab.pop("palette", None)
    (large / "vocabulary.json").write_text(json.dumps(vocab))

    class VocabularyEcho(torch.nn.Module):
        """Predicts, everywhere, the size of its current vocabulary (and echoes the ground truth)."""

        def set_vocabulary(self, classes, prompts=None, thing_classes=None):
            self.n = len(classes)

        def test_step(self, batch):
            sample = batch["data_samples"][0]
            sample.pred_sem_seg = PixelData(data=torch.full_like(sample.gt_sem_seg.data, self.n))
            return [sample]

    init_default_scope("mmseg")
    cfg = Config.fromfile("configs/smoke/tiny_fcn.py")
    cfg.eval_datasets = {name: dict(cfg.eval_datasets.toy, data_root=str(root))  # the study's sets, by name
                         for name, root in (("large", large), ("small", small))}
    out = save_predictions(VocabularyEcho(), cfg, ["large", "small"], tmp_path / "w", n=2)
    for name, classes in (("large", 5), ("small", 3)):
        assert len(out[name]) == 2
        for entry in out[name]:
            assert np.unique(np.asarray(Image.open(entry["pred"]))).tolist() == [classes]
            assert Path(entry["gt"]).is_file()


def test_git_commit_marks_code_changes_dirty_but_not_written_reports(tmp_path):
    import subprocess

    from ovbench.sweep.trial import git_commit

    def git(*args):
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path, check=True,
                       capture_output=True)

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "table.md").write_text("old\n")
    (tmp_path / "model.py").write_text("x = 1\n")
    git("init", "-q")
    git("add", ".")
    git("commit", "-q", "-m", "init")
    sha = git_commit(tmp_path)
    assert len(sha) == 40
    (tmp_path / "reports" / "table.md").write_text("new figures\n")
    assert git_commit(tmp_path) == sha
    (tmp_path / "model.py").write_text("x = 2\n")
    assert git_commit(tmp_path) == sha + "+dirty"
