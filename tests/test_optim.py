"""PeftOptimWrapperConstructor: a PEFT method's ``lr_mult`` sets its CLIP's rate; without one, the config's."""
from __future__ import annotations

import pytest
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

import ovbench
from conftest import REPO_ROOT

ovbench.load()
BASE_LR = 2e-3


def build(peft: dict, custom_keys: dict, constructor: str = "PeftOptimWrapperConstructor"):
    """The tiny CAT-Seg model with ``peft`` and its optimizer wrapper (AdamW at BASE_LR, ``custom_keys``)."""
    from mmseg.registry import MODELS

    init_default_scope("mmseg")
    cfg = Config.fromfile(str(REPO_ROOT / "configs" / "smoke" / "tiny_catseg.py"))
    cfg.model.clip.peft = peft
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, dict(
        type="OptimWrapper", constructor=constructor,
        optimizer=dict(type="AdamW", lr=BASE_LR, weight_decay=1e-4),
        paramwise_cfg=dict(custom_keys=custom_keys)))
    return model, wrapper


def rates(model, wrapper):
    """``{parameter name: (lr, weight_decay)}`` of every trainable parameter."""
    by_id = {id(p): (g["lr"], g["weight_decay"]) for g in wrapper.optimizer.param_groups for p in g["params"]}
    return {n: by_id[id(p)] for n, p in model.named_parameters() if p.requires_grad}


def test_a_methods_lr_mult_sets_its_clip_rate_and_nothing_else():
    model, wrapper = build(dict(type="full", lr_mult=0.03), {"backbone.clip": dict(lr_mult=0.1)})
    got = rates(model, wrapper)
    clip = {n: lr for n, (lr, _) in got.items() if n.startswith("backbone.clip.")}
    head = {n: lr for n, (lr, _) in got.items() if not n.startswith("backbone.clip.")}
    assert clip and head
    assert all(lr == pytest.approx(BASE_LR * 0.03) for lr in clip.values()), sorted(set(clip.values()))
    assert all(lr == pytest.approx(BASE_LR) for lr in head.values()), sorted(set(head.values()))


def test_without_lr_mult_the_configs_custom_key_holds():
    model, wrapper = build(dict(type="lora", r=2), {"backbone.clip": dict(lr_mult=0.1)})
    got = rates(model, wrapper)
    clip = [lr for n, (lr, _) in got.items() if n.startswith("backbone.clip.")]
    assert clip and all(lr == pytest.approx(BASE_LR * 0.1) for lr in clip)


def test_the_keys_other_options_are_kept():
    model, wrapper = build(dict(type="lora", r=2, lr_mult=0.5), {"backbone.clip": dict(lr_mult=0.1, decay_mult=0.0)})
    clip = [v for n, v in rates(model, wrapper).items() if n.startswith("backbone.clip.")]
    assert clip and all(lr == pytest.approx(BASE_LR * 0.5) and wd == 0.0 for lr, wd in clip)


def test_mmengines_default_constructor_ignores_lr_mult():
    """Why the constructor exists: without it, the method's rate would silently not apply."""
    model, wrapper = build(dict(type="full", lr_mult=0.03), {"backbone.clip": dict(lr_mult=0.1)},
                           constructor="DefaultOptimWrapperConstructor")
    clip = [lr for n, (lr, _) in rates(model, wrapper).items() if n.startswith("backbone.clip.")]
    assert all(lr == pytest.approx(BASE_LR * 0.1) for lr in clip)


def test_a_config_whose_optimizer_would_ignore_lr_mult_is_refused():
    from ovbench.errors import InputError
    from ovbench.train import load_config

    config = str(REPO_ROOT / "configs" / "smoke" / "tiny_catseg.py")
    options = {"model.clip.peft": dict(type="full", lr_mult=0.03)}
    assert load_config(config, cfg_options=options).model.clip.peft.lr_mult == 0.03
    with pytest.raises(InputError, match=r"tiny_catseg.py: model.clip.peft.lr_mult is set, but optim_wrapper.constructor "
                                         r"is 'DefaultOptimWrapperConstructor'"):
        load_config(config, cfg_options={**options, "optim_wrapper.constructor": "DefaultOptimWrapperConstructor"})


@pytest.mark.parametrize("config, clip_mult", [("full.py", 0.03), ("hclip.py", 0.1)])
def test_embedded_benchmark_gives_full_fine_tuning_its_own_clip_rate(config, clip_mult):
    """Benchmark v3: the PEFT methods' CLIP at 0.1x the head's rate, full fine-tuning at 0.03x (it stalls
    at 0.1x), through the config files as a trial builds them."""
    from mmseg.registry import MODELS

    from ovbench.train import load_config

    init_default_scope("mmseg")
    cfg = load_config(str(REPO_ROOT / "configs" / "synth" / config))
    model = MODELS.build(cfg.model)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    base = cfg.optim_wrapper.optimizer.lr
    got = rates(model, wrapper)
    clip = [lr for n, (lr, _) in got.items() if n.startswith("backbone.clip.")]
    head = [lr for n, (lr, _) in got.items() if not n.startswith("backbone.clip.")]
    assert clip and all(lr == pytest.approx(base * clip_mult) for lr in clip), sorted(set(clip))
    assert head and all(lr == pytest.approx(base) for lr in head), sorted(set(head))
