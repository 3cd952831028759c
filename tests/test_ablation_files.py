"""Every shipped ablation file is valid, and every trial's config resolves to a buildable PEFT setting."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
from mmengine.config import Config

from ovbench.sweep.spec import load_spec

ABLATIONS = sorted((Path(__file__).resolve().parents[1] / "ablations").glob("*.yaml"))


def test_the_issue_files_are_shipped_or_explained():
    names = {p.stem for p in ABLATIONS}
    assert {"ci", "block_size", "peft_rank", "orth_weight", "orth_placement", "components", "peft_methods",
            "fisa_bottleneck"} <= names


@pytest.mark.parametrize("path", ABLATIONS, ids=[p.stem for p in ABLATIONS])
def test_ablation_file_is_valid_and_every_point_builds(path):
    spec = load_spec(path)
    assert spec.study == path.stem and spec.grid_points()
    if spec.real_config:
        assert spec.real_config != spec.base_config
    base = Config.fromfile(str(spec.base_config_path()))
    for point in spec.grid_points():
        cfg = copy.deepcopy(base)
        cfg.merge_from_dict(copy.deepcopy({**spec.overrides, **spec.config_params(point)}))
        peft = cfg.model.get("clip", {}).get("peft") if "clip" in cfg.model else None
        if peft is not None:
            from ovbench.peft import build_peft_config

            built = build_peft_config(copy.deepcopy(dict(peft)))
            assert type(built).method_name == peft["type"], point


@pytest.mark.parametrize("path", [p for p in ABLATIONS if p.stem != "ci"], ids=lambda p: p.stem)
def test_every_shipped_study_has_seeds_and_something_to_compare_with(path):
    """Issue 19: at least 3 seeds, and a ``reference:`` wherever the study has two settings to pair;
    a one-setting study pairs with another study's trials, which its description must name."""
    from ovbench.sweep.labels import setting_label

    spec = load_spec(path)
    assert len(spec.seeds) >= 3
    settings = {setting_label(p, list(spec.space)) for p in spec.grid_points()}
    if len(settings) > 1:
        assert spec.reference in settings
    else:
        assert "compare with" in spec.description
