"""docs/extending.md, checked: a new PEFT method through the public API only (one file + a registration),
held to the contract the shipped methods pass, and run in a 2-trial ablation.

The method is IA3 (Liu et al., NeurIPS 2022, "Few-shot parameter-efficient fine-tuning is better and
cheaper than in-context learning"): a learned vector rescales a site's output features, ones at init.
The trial processes import this module through the config's ``custom_imports``.
"""
# ---- the method: everything a new method needs (the lines docs/extending.md counts) ----------------
from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from ovbench.peft import PeftConfig, PeftMethod, register_peft


class IA3Method(PeftMethod):
    """``y = l * (W x + b)`` per site, ``l`` a learned vector (ones: identity at init)."""

    def __init__(self, cfg: "IA3Config", model: nn.Module) -> None:
        super().__init__(cfg, model)  # the base resolves encoders, blocks and sites
        self.ia3 = nn.ParameterDict({  # names start with the encoder: per-encoder accounting
            f"{enc}_{i}_{site}": nn.Parameter(torch.ones(self.site_dims((enc, i), site)[1]))
            for (enc, i), site in self.site_keys()})

    def site_forward(self, key, site, x, w, b):
        return F.linear(x, w, b) * self.ia3[f"{key[0]}_{key[1]}_{site}"]

    def merged_weight(self, key, site, w, b):
        scale = self.ia3[f"{key[0]}_{key[1]}_{site}"]
        return w * scale[:, None], None if b is None else b * scale


@register_peft("ia3_example")  # not "ia3": a reader who follows the doc adds ovbench/peft/ia3.py
@dataclasses.dataclass
class IA3Config(PeftConfig):
    sites: object = ("k", "v", "mlp_fc")  # IA3's choice: keys, values, the MLP's hidden features
    method_cls = IA3Method
# ---- end of the method ------------------------------------------------------------------------------

import os  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SPEC = """\
study: ia3
base_config: {config}
space:
  model.clip.peft.sites: [[k, v], [k, v, mlp_fc]]
seeds: [0]
datasets: [toy]
overrides:
  train_cfg.max_iters: 2
  train_cfg.val_interval: 1000
  default_hooks.checkpoint.interval: 1000
work_dir: {work}
executor: {{type: local, workers: 1, timeout_min: 5}}
"""


def test_new_method_passes_the_shipped_methods_contract(monkeypatch):
    import test_peft  # the identity-at-init and merge test every shipped method passes

    monkeypatch.setitem(test_peft.CONFIGS, "ia3_example", dict(type="ia3_example", sites="all"))
    test_peft.test_identity_at_init_and_merge("ia3_example")


@pytest.mark.slow  # two real trials (subprocesses, 2 iterations each): ~90 s on 2 cores
def test_new_method_runs_in_a_two_trial_ablation(tmp_path, monkeypatch):
    import optuna
    from optuna.trial import TrialState

    from ovbench.cli import main

    config = tmp_path / "ia3_catseg.py"
    config.write_text(f"_base_ = ['{REPO / 'configs/smoke/tiny_catseg.py'}']\n"
                      "custom_imports = dict(imports=['test_extending'], allow_failed_imports=False)\n"
                      "model = dict(clip=dict(peft=dict(type='ia3_example', sites=('k', 'v'))))\n")
    spec = tmp_path / "ia3.yaml"
    spec.write_text(SPEC.format(config=config, work=tmp_path / "work"))
    monkeypatch.setenv("OVBENCH_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.chdir(REPO)
    assert main(["run", str(spec), "--no-progress"]) == 0
    study = optuna.load_study(study_name="ia3", storage=f"sqlite:///{tmp_path / 'work' / 'optuna.db'}")
    done = {t.params["model.clip.peft.sites"]: t for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert len(done) == 2
    # tiny_catseg's CLIP: 4 image + 2 text blocks of width 64, MLP hidden 256; mlp_fc adds 6 x 256 scales
    extra = done['["k", "v", "mlp_fc"]'].user_attrs["trainable_params"] - done['["k", "v"]'].user_attrs["trainable_params"]
    assert extra == 6 * 256
