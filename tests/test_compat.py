"""Each shim in ovbench/compat.py is covered here; removing a shim makes its test fail.

Shims that do nothing on a stack that does not need them (a matching
torchvision, a full mmcv) are skipped there, with the reason.
"""
from __future__ import annotations

import pickle
import subprocess
import sys
import textwrap

import pytest
import torch

from ovbench import compat


def _run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=180
    )


def test_apply_is_idempotent_and_reports_every_shim():
    compat.apply()
    compat.apply()
    assert {"setuptools<81", "torchvision-ops", "mmcv-ext", "mmengine-checkpoints"} <= set(compat.STATUS)


def test_torchvision_and_open_clip_import_after_ovbench():
    # Without the nms/qnms stub schemas, `import torchvision` raises
    # "operator torchvision::nms does not exist" on this CPU torch.
    proc = _run_python(
        """
        import ovbench, torchvision, torchvision.transforms, open_clip
        from ovbench import compat
        print("STATUS", compat.STATUS["torchvision-ops"])
        """
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_torchvision_stub_ops_raise_a_clear_error():
    if not compat.STATUS.get("torchvision-ops", "").startswith("applied"):
        pytest.skip("torchvision's compiled ops load here; no stub installed")
    with pytest.raises(compat.MissingCompiledOpError, match="torchvision::nms"):
        torch.ops.torchvision.nms(torch.rand(3, 4), torch.rand(3), 0.5)


def test_bare_torchvision_import_fails_without_shim_on_this_stack():
    """Documents why the shim exists: a fresh interpreter without ovbench cannot import torchvision."""
    if not compat.STATUS.get("torchvision-ops", "").startswith("applied"):
        pytest.skip("torchvision works unshimmed on this stack")
    proc = _run_python("import torchvision")
    assert proc.returncode != 0 and "torchvision::nms" in proc.stderr


def test_mmseg_imports_and_mmcv_compiled_ops_fail_only_when_called():
    import mmcv.ops
    import mmseg.models  # noqa: F401  (imports mmcv.ops at module level)

    if compat.has_compiled_mmcv_ops():
        pytest.skip("full mmcv with compiled ops is installed")
    # Pure-PyTorch parts of mmcv.ops keep working ...
    out = mmcv.ops.point_sample(torch.rand(1, 3, 8, 8), torch.rand(1, 5, 2))
    assert out.shape == (1, 3, 5)
    # ... compiled ones fail when called, naming themselves.
    with pytest.raises(compat.MissingCompiledOpError, match="mmcv.ops.nms"):
        mmcv.ops.nms(torch.rand(3, 4), torch.rand(3), 0.5)


def test_mmengine_sees_no_mmcv_full_under_the_stub():
    from mmengine.utils.dl_utils import mmcv_full_available

    assert mmcv_full_available() == compat.has_compiled_mmcv_ops()


def test_mmengine_checkpoint_loads_with_weights_only_and_safety_is_kept(tmp_path):
    """A checkpoint holding mmengine's HistoryBuffer loads through mmengine, not through plain torch.load."""
    from mmengine.logging import MessageHub
    from mmengine.runner.checkpoint import _load_checkpoint, save_checkpoint

    hub = MessageHub.get_instance("ovbench-test-compat")
    hub.update_scalar("train/loss", 0.5)
    hub.update_scalar("train/loss", 0.25)
    path = tmp_path / "ckpt.pth"
    save_checkpoint({"state_dict": {"w": torch.ones(2)}, "message_hub": hub.state_dict()}, str(path))

    ckpt = _load_checkpoint(str(path), map_location="cpu")
    assert torch.equal(ckpt["state_dict"]["w"], torch.ones(2))
    buffer = ckpt["message_hub"]["log_scalars"]["train/loss"]
    assert buffer.mean() == pytest.approx(0.375)

    # Process-wide safety is untouched: torch.load's default still refuses the file.
    with pytest.raises(pickle.UnpicklingError):
        torch.load(str(path))


def test_restricted_getattr_refuses_anything_but_mmengine_statistics(tmp_path):
    import collections

    from mmengine.logging.history_buffer import HistoryBuffer
    from mmengine.runner.checkpoint import _load_checkpoint

    class Reach:
        def __init__(self, owner, name):
            self.owner, self.name = owner, name

        def __reduce__(self):
            return (getattr, (self.owner, self.name))

    # An allowed class but not mmengine's, and mmengine's class but a private name.
    for owner, name in ((collections.OrderedDict, "fromkeys"), (HistoryBuffer, "_statistics_methods")):
        path = tmp_path / f"reach_{name}.pth"
        torch.save({"x": Reach(owner, name)}, str(path))
        with pytest.raises(pickle.UnpicklingError):
            _load_checkpoint(str(path), map_location="cpu")


def test_missing_pkg_resources_gives_a_clear_error(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "pkg_resources" else real(name, *a)
    )
    with pytest.raises(ImportError, match="setuptools<81"):
        compat._check_pkg_resources()


def test_cpu_launcher_shim_initialises_gloo_without_cuda(monkeypatch):
    """mmengine's pytorch launcher calls torch.cuda.set_device unconditionally; the shim must not."""
    import mmengine.dist.utils as dist_utils
    import torch

    if torch.cuda.is_available():
        pytest.skip("the shim only acts on CPU-only machines")
    assert getattr(dist_utils._init_dist_pytorch, "_ovbench_cpu", False)
    calls = []
    monkeypatch.setattr(torch.distributed, "init_process_group", lambda **kw: calls.append(kw))
    dist_utils._init_dist_pytorch("gloo", timeout=None)
    assert calls == [{"backend": "gloo", "timeout": None}]
    with pytest.raises(RuntimeError, match="backend='gloo'"):
        dist_utils._init_dist_pytorch("nccl")
