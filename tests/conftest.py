"""Shared fixtures. ``import ovbench`` first: it applies the stack shims."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

import ovbench  # noqa: F401  (must precede torchvision / mmseg imports)
from ovbench.data.toy import TOY_CLASSES, write_toy_dataset  # noqa: F401  (re-exported for tests)

REPO_ROOT = Path(__file__).resolve().parents[1]
SMOKE_CONFIG = REPO_ROOT / "configs" / "smoke" / "tiny_fcn.py"


def data_root_options(root: Path, **extra) -> dict:
    """``--cfg-options`` pointing every dataloader of a config at ``root`` (plus ``extra``)."""
    opts = {f"{k}.dataset.data_root": str(root) for k in ("train_dataloader", "val_dataloader", "test_dataloader")}
    opts.update(extra)
    return opts


def fill_study(spec_text: str, tmp_path: Path, result_of: Callable[[dict], dict]):
    """Write an ablation file, create its study and record ``result_of(point)`` for every point, as a
    worker would but without training: claims + records. Returns (path, study, storage url)."""
    from ovbench.sweep import study as st
    from ovbench.sweep.spec import load_spec

    path = tmp_path / "study.yaml"
    path.write_text(spec_text.format(work=tmp_path / "work"))
    spec = load_spec(path)
    url = st.default_storage_url(st.default_work_root(spec))
    study = st.open_study(spec, st.open_storage(url), spec.study)
    owner, attempted = st.Owner.me(), set()
    while (claim := st.claim_next(study, spec, tmp_path / "work", owner, attempted, 60)) is not None:
        st.record_result(study, claim.trial, result_of(claim.point), spec.objective_metric)
    return path, study, url


@pytest.fixture(scope="session")
def toy_dataset(tmp_path_factory) -> Path:
    """A session-wide toy dataset root (read-only by convention)."""
    return write_toy_dataset(tmp_path_factory.mktemp("toy_data"))



@pytest.fixture(scope="session", autouse=True)
def _mmseg_scope():
    """Build registry objects in mmseg's scope outside a Runner, as MMSeg's own tests do."""
    from mmengine.registry import init_default_scope

    init_default_scope("mmseg")
