"""Every shipped ablation file is valid, and every trial's config resolves to a buildable PEFT setting."""
from __future__ import annotations

from pathlib import Path

import pytest

from ovbench.sweep.spec import load_spec

ABLATIONS = sorted((Path(__file__).resolve().parents[1] / "ablations").glob("*.yaml"))


def test_the_issue_files_are_shipped_or_explained():
    names = {p.stem for p in ABLATIONS}
    assert {"ci", "block_size", "peft_rank", "orth_weight", "orth_placement", "components", "peft_methods",
            "fisa_bottleneck"} <= names


@pytest.mark.parametrize("path", ABLATIONS, ids=[p.stem for p in ABLATIONS])
def test_ablation_file_is_valid_and_every_point_builds(path):
    """At both scales: the file loads and every grid point's CLIP takes its PEFT config (built on the
    meta device, as ``ovbench run`` checks before a study starts)."""
    from ovbench.sweep.preflight import check_points_build

    spec = load_spec(path)
    assert spec.study == path.stem and spec.grid_points()
    check_points_build(spec)
    if spec.real_config:
        assert spec.real_config != spec.base_config
        real = load_spec(path, scale="real")  # a file that names a real_config runs at --scale real
        assert real.grid_points()
        check_points_build(real)


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
