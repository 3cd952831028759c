"""Shims that make the pinned stack work on CPU torch 2.13 — in one place.

ovbench runs on PyTorch 2.13 (CPU build), torchvision 0.28 (only a CUDA build
exists), mmcv-lite 2.1 (no compiled ops), mmengine 0.10 and mmsegmentation
1.2.2. Out of the box these do not import together. Every workaround lives
here, is applied by :func:`apply` (called first thing by ``ovbench/__init__``),
is idempotent, does nothing where the real component works (a full mmcv, a
matching torchvision), and is covered by ``tests/test_compat.py``, which fails
if the shim is removed.

The five shims (numbered below, each with its comment):

1. ``setuptools<81``: mmengine 0.10 imports ``pkg_resources``; fail early and clearly without it.
2. torchvision's ``nms``/``qnms`` op schemas, defined before torchvision's CUDA-only build is imported.
3. a stand-in ``mmcv._ext`` for mmcv-lite (compiled ops raise when called).
4. mmengine checkpoints under ``torch.load(weights_only=True)``: exactly mmengine's types allowed,
   only inside its loaders.
5. mmengine's ``pytorch`` launcher on a CPU-only machine (gloo, no ``cuda.set_device``).

mmengine private APIs used here, and why (they are stack-trap shims, so they stay in
this module rather than in :mod:`ovbench.adapters`): ``CheckpointLoader._schemes``
(shim 4: mmengine has no public hook around its checkpoint loaders, and wrapping each
registered loader is the only way to scope the allowed types to mmengine's own
loading) and ``mmengine.dist.utils._init_dist_pytorch`` (shim 5: the launcher calls it
directly, and its CUDA call is the bug; it is replaced only when there is no CUDA).

Importing ``ovbench`` before ``torchvision``/``mmseg`` is what makes the stack
work; ``python -m ovbench.train`` and the ``ovbench`` CLI do so. Configs run by
other tools should list ``custom_imports = dict(imports=['ovbench'])``.
"""
from __future__ import annotations

import functools
import importlib
import importlib.machinery
import importlib.util
import os
import sys
import types
from typing import Any, Callable, Dict

#: What each shim did in this process: ``'applied'``, ``'not needed'`` or a reason.
STATUS: Dict[str, str] = {}


class MissingCompiledOpError(RuntimeError):
    """A compiled (C++/CUDA) op was called but this install has none."""


# --------------------------------------------------------------------------
# 1. setuptools < 81
# mmengine.utils.package_utils (used by Config.fromfile for `mmseg::` bases and
# by the registry's scope handling) imports `pkg_resources`, which setuptools
# 81 removed. We pin setuptools<81; this check turns the late, obscure
# ImportError into an early, clear one.
# --------------------------------------------------------------------------
def _check_pkg_resources() -> None:
    if importlib.util.find_spec("pkg_resources") is None:
        raise ImportError(
            "ovbench: mmengine 0.10 needs `pkg_resources`, which setuptools>=81 no "
            "longer ships. Install `setuptools<81` in this environment "
            "(requirements/constraints-cpu.txt pins 80.10.2)."
        )
    STATUS["setuptools<81"] = "ok"


# --------------------------------------------------------------------------
# 2. torchvision built for CUDA on a CPU torch
# torchvision 0.28.0 (the release pinned to torch 2.13.0) ships only a CUDA
# build. Its `_C` extension fails to load on CPU torch, which torchvision
# tolerates -- except that `torchvision/_meta_registrations.py` unconditionally
# registers fake kernels for `torchvision::nms` and `torchvision::qnms`, and
# that raises "operator torchvision::nms does not exist" at import. So every
# `import torchvision` (open_clip and timm do one) fails. We define just those
# two op schemas, with kernels that raise MissingCompiledOpError, before
# torchvision is imported. torchvision.ops still refuses to run them (its own
# `_assert_has_ops` check comes first); the rest of torchvision works.
# --------------------------------------------------------------------------
_TORCHVISION_STUB_OPS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_torchvision_stub_lib = None  # keep the Library object alive for the process


def _torchvision_ext_loads() -> bool:
    """Load torchvision's compiled ops exactly as torchvision would; False if impossible."""
    import torch

    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return True  # no torchvision: nothing to fix
    pkg_dir = list(spec.submodule_search_locations)[0]
    for suffix in importlib.machinery.EXTENSION_SUFFIXES:
        path = os.path.join(pkg_dir, "_C" + suffix)
        if os.path.exists(path):
            try:
                torch.ops.load_library(path)
                return True
            except (OSError, ImportError):
                return False
    return False


def _raise_missing(op: str, remedy: str) -> Callable[..., Any]:
    def _missing(*args: Any, **kwargs: Any) -> Any:
        raise MissingCompiledOpError(f"{op} needs compiled ops, which this install lacks. {remedy}")

    _missing.__name__ = op.replace("::", "_").replace(".", "_")
    return _missing


def _shim_torchvision_ops() -> None:
    global _torchvision_stub_lib
    if "torchvision" in sys.modules and hasattr(sys.modules["torchvision"], "__version__"):
        STATUS["torchvision-ops"] = "not needed (torchvision already imported)"
        return
    if _torchvision_stub_lib is not None or _torchvision_ext_loads():
        STATUS.setdefault("torchvision-ops", "not needed")
        return
    import torch

    lib = torch.library.Library("torchvision", "DEF")
    for name, schema in _TORCHVISION_STUB_OPS.items():
        lib.define(schema)
        kernel = _raise_missing(
            f"torchvision::{name}",
            "Install a torchvision build that matches your torch (on GPU machines: see README).",
        )
        lib.impl(name, kernel, "CompositeExplicitAutograd")
    _torchvision_stub_lib = lib
    STATUS["torchvision-ops"] = "applied (stub schemas for nms, qnms)"


# --------------------------------------------------------------------------
# 3. mmcv-lite has no `mmcv._ext`
# mmseg 1.2.2 imports `mmcv.ops` at module level (e.g. mmseg.models.losses,
# mmseg.models.decode_heads.point_head). Every `mmcv/ops/*.py` calls
# `ext_loader.load_ext('_ext', [names])`, which imports `mmcv._ext` -- absent
# from mmcv-lite -- so `import mmseg.models` fails. We register a stand-in
# module whose every attribute is a function raising MissingCompiledOpError.
# Pure-PyTorch parts of mmcv.ops (point_sample, ...) keep working; a compiled
# op fails when *called*, naming itself, not at import.
# --------------------------------------------------------------------------
class _MissingExtModule(types.ModuleType):
    """Stand-in for `mmcv._ext` whose functions raise a clear error when called."""

    __ovbench_stub__ = True

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("__"):
            raise AttributeError(name)
        return _raise_missing(
            f"mmcv.ops.{name}",
            "mmcv-lite has no compiled ops; install a full mmcv (<2.2.0) built for "
            "your torch, e.g. `mim install 'mmcv>=2.0.0,<2.2.0'` (see README).",
        )


def _shim_mmcv_ext() -> None:
    if "mmcv._ext" in sys.modules:
        STATUS.setdefault("mmcv-ext", "not needed")
        return
    if importlib.util.find_spec("mmcv") is None:
        raise ImportError(
            "ovbench: mmcv is not installed. CPU: `pip install 'mmcv-lite>=2.0.0rc4,<2.2.0'` "
            "(or `pip install -e .[lite]`); GPU: a full mmcv<2.2.0 for your torch "
            "(mmsegmentation 1.2.2 rejects mmcv 2.2.0)."
        )
    try:
        importlib.import_module("mmcv._ext")
        STATUS["mmcv-ext"] = "not needed (compiled mmcv ops present)"
        return
    except ImportError:
        pass
    stub = _MissingExtModule("mmcv._ext")
    # A spec without a loader: `pkgutil.find_loader('mmcv._ext')` -- used by
    # mmengine's `mmcv_full_available()` and mmcv's `check_ops_exist()` -- then
    # returns None, i.e. "no compiled ops", instead of raising ValueError.
    stub.__spec__ = importlib.machinery.ModuleSpec("mmcv._ext", loader=None)
    sys.modules["mmcv._ext"] = stub
    STATUS["mmcv-ext"] = "applied (mmcv-lite: compiled ops raise when called)"


def has_compiled_mmcv_ops() -> bool:
    """True when mmcv's compiled ops are real (full mmcv), False under the mmcv-lite stub."""
    ext = sys.modules.get("mmcv._ext")
    if ext is None:
        try:
            ext = importlib.import_module("mmcv._ext")
        except ImportError:
            return False
    return not getattr(ext, "__ovbench_stub__", False)


# --------------------------------------------------------------------------
# 4. torch.load(weights_only=True) refuses mmengine checkpoints
# Since torch 2.6 `torch.load` defaults to weights_only=True. mmengine 0.10's
# checkpoint loaders call `torch.load(path, map_location=...)`, and its
# checkpoints pickle a few non-tensor objects (the MessageHub's HistoryBuffer,
# numpy scalars and arrays in `meta`/`message_hub`, the config text...), so
# resume, `load_checkpoint` and `mmseg.apis.init_model` all fail with
# "Weights only load failed". We keep weights_only=True and instead allow
# exactly those types, and only while an mmengine checkpoint loader runs:
# each loader in `CheckpointLoader._schemes` is wrapped in
# `torch.serialization.safe_globals([...])`. Process-wide safety is unchanged.
# --------------------------------------------------------------------------
def _restricted_getattr_for(allowed_owners: tuple) -> Callable[[Any, str], Any]:
    """A `getattr` that only reads attributes of the given classes.

    mmengine's HistoryBuffer pickles its `_statistics_methods` dict as
    `getattr(HistoryBuffer, 'min')` etc., so checkpoints contain the global
    `builtins.getattr`. Allowing the real getattr would let a malicious file
    reach any attribute of any allowed object; this one answers only for
    mmengine's own classes and public names.
    """

    def restricted_getattr(obj: Any, name: str) -> Any:
        if obj in allowed_owners and isinstance(name, str) and not name.startswith("_"):
            return getattr(obj, name)
        raise pickle_error(f"checkpoint asks for getattr({obj!r}, {name!r}), which ovbench does not allow")

    return restricted_getattr


def pickle_error(msg: str) -> Exception:
    import pickle

    return pickle.UnpicklingError(msg)


def mmengine_checkpoint_safe_globals() -> list:
    """The non-tensor types an mmengine 0.10 checkpoint is allowed to contain."""
    import codecs
    import collections

    import numpy as np
    from mmengine.logging.history_buffer import HistoryBuffer

    types_: list = [HistoryBuffer, collections.OrderedDict, collections.defaultdict]
    restricted = _restricted_getattr_for((HistoryBuffer,))
    types_ += [(restricted, "builtins.getattr"), (restricted, "__builtin__.getattr")]
    types_ += [(codecs.encode, "_codecs.encode")]  # numpy pickles raw bytes through it
    # numpy scalars/arrays as pickled by numpy 1.x and 2.x
    types_ += [np.dtype, np.ndarray]
    for mod_name in ("numpy.core.multiarray", "numpy._core.multiarray"):
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        for attr in ("scalar", "_reconstruct"):
            if hasattr(mod, attr):
                types_.append(getattr(mod, attr))
    types_ += [type(np.dtype(t)) for t in ("float64", "float32", "float16", "int64", "int32", "uint8", "bool")]
    return types_


def _shim_mmengine_checkpoint_loading() -> None:
    import torch
    from mmengine.runner.checkpoint import CheckpointLoader

    if getattr(CheckpointLoader, "_ovbench_safe_globals", False):
        return
    allowed = mmengine_checkpoint_safe_globals()

    def wrap(loader: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(loader)  # mmengine logs the loader's __name__
        def load_with_mmengine_globals(*args: Any, **kwargs: Any) -> Any:
            with torch.serialization.safe_globals(allowed):
                return loader(*args, **kwargs)

        return load_with_mmengine_globals

    schemes = CheckpointLoader._schemes
    for prefix in list(schemes):
        schemes[prefix] = wrap(schemes[prefix])
    CheckpointLoader._ovbench_safe_globals = True
    STATUS["mmengine-checkpoints"] = "applied (weights_only kept; mmengine types allowed in its loaders)"


# --------------------------------------------------------------------------
# 5. mmengine's pytorch launcher on a CPU-only machine
#
# mmengine 0.10's ``_init_dist_pytorch`` calls ``torch.cuda.set_device(LOCAL_RANK)``
# before ``init_process_group`` whatever the backend, so ``torchrun ... --launcher
# pytorch`` dies on a CPU build of torch ("torch._C has no attribute
# '_cuda_setDevice'") even with the gloo backend. Without CUDA we initialise the
# gloo process group directly; with CUDA mmengine's own code runs unchanged.
def _shim_mmengine_cpu_launcher() -> None:
    import mmengine.dist.utils as dist_utils
    import torch

    original = dist_utils._init_dist_pytorch
    if getattr(original, "_ovbench_cpu", False):
        return

    @functools.wraps(original)
    def init_dist_pytorch(backend: str, init_backend: str = "torch", **kwargs: Any) -> None:
        if torch.cuda.is_available():
            return original(backend, init_backend=init_backend, **kwargs)
        if backend != "gloo" or init_backend != "torch":
            raise RuntimeError(
                f"distributed launch without CUDA needs env_cfg.dist_cfg.backend='gloo' (got backend={backend!r}, "
                f"init_backend={init_backend!r}); ovbench.train.load_config sets it for launcher='pytorch' on CPU"
            )
        torch.distributed.init_process_group(backend="gloo", **kwargs)

    init_dist_pytorch._ovbench_cpu = True
    dist_utils._init_dist_pytorch = init_dist_pytorch
    STATUS["mmengine-cpu-launcher"] = "applied (gloo process group without torch.cuda.set_device)"


# --------------------------------------------------------------------------
_APPLIED = False


def apply() -> None:
    """Apply every shim once. Must run before torchvision/mmcv/mmseg are imported."""
    global _APPLIED
    if _APPLIED:
        return
    _check_pkg_resources()
    _shim_torchvision_ops()
    _shim_mmcv_ext()
    _shim_mmengine_checkpoint_loading()
    _shim_mmengine_cpu_launcher()
    _APPLIED = True


def check_stack() -> Dict[str, str]:
    """Import the whole stack and return the versions; raises with a clear message if broken."""
    apply()
    import mmcv
    import mmengine
    import mmseg
    import mmseg.apis  # noqa: F401
    import mmseg.models  # noqa: F401
    import open_clip
    import optuna
    import torch
    import torchvision

    from ovbench.machine import describe_device

    info = {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "mmcv": mmcv.__version__,
        "mmcv compiled ops": "yes" if has_compiled_mmcv_ops() else "no (mmcv-lite)",
        "mmengine": mmengine.__version__,
        "mmsegmentation": mmseg.__version__,
        "open_clip": open_clip.__version__,
        "optuna": optuna.__version__,
        "device": describe_device(),
    }
    return info


