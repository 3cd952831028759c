"""Seeded, vectorised rendering of one synthetic scene.

A scene is 1-3 amorphous **stuff** regions (argmax of random low-frequency
sinusoid fields, so region borders are smooth blobs rather than boxes), then
0-4 **thing** instances painted in order, later ones occluding earlier ones.
Each pixel gets a global class id and an instance id (0 for stuff). All
randomness comes from one ``numpy.random.Generator``, so the same seed gives
the same bytes on any machine (only integer/float64 numpy arithmetic is used).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Tuple

import numpy as np

from ovbench.data.synth.world import COLOURS, SHAPES, SynthClass, all_classes

_CLASSES = all_classes()
_BY_NAME = {c.name: c for c in _CLASSES}
_COLOUR_RGB = {k: np.asarray(v, np.float64) for k, v in COLOURS.items()}
NEUTRAL_GREY = 118.0


@dataclass
class Scene:
    """One rendered scene. ``classes``/``instances`` are ``int16`` maps of global class / instance ids."""

    image: np.ndarray  # H x W x 3 uint8
    classes: np.ndarray  # H x W int16, global class id, -1 where nothing is labelled (plain grey)
    instances: np.ndarray  # H x W int16, 0 = stuff, k = k-th thing instance
    stuff: List[str] = field(default_factory=list)  # stuff class names present
    things: List[Tuple[int, str, str]] = field(default_factory=list)  # (instance id, class name, shape) visible


def _grid(size: int) -> Tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[:size, :size]
    return yy.astype(np.float64), xx.astype(np.float64)


def stuff_texture(texture: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """Luminance modulation (H x W, around 1) of a stuff texture, with random period/phase/orientation."""
    yy, xx = _grid(size)
    if texture == "stripes":
        period = rng.uniform(6, 10)
        theta = rng.uniform(0, np.pi)
        u = xx * np.cos(theta) + yy * np.sin(theta)
        return np.where(((u / period + rng.uniform()) % 1.0) < 0.5, 1.15, 0.45)
    if texture == "checks":
        cell = rng.integers(5, 9)
        oy, ox = rng.integers(0, cell, 2)
        return np.where((((yy + oy) // cell + (xx + ox) // cell) % 2) == 0, 1.15, 0.45)
    if texture == "dots":
        step = rng.integers(6, 9)
        oy, ox = rng.uniform(0, step, 2)
        dy = (yy + oy) % step - step / 2
        dx = (xx + ox) % step - step / 2
        return np.where(dy * dy + dx * dx <= (step * 0.28) ** 2, 1.2, 0.5)
    if texture == "gravel":
        block = int(rng.integers(3, 5))
        n = size // block + 2
        cells = rng.uniform(0.35, 1.25, (n, n))
        return np.kron(cells, np.ones((block, block)))[:size, :size]
    raise ValueError(f"unknown stuff texture {texture!r}")


def thing_material(material: str, size: int, cy: float, cx: float, r: float, rng: np.random.Generator
                   ) -> Tuple[np.ndarray, np.ndarray]:
    """(luminance H x W, whiteness H x W in [0, 1]) of a thing material centred at (cy, cx)."""
    yy, xx = _grid(size)
    zeros = np.zeros((size, size))
    if material == "metal":  # smooth shading with a specular highlight up-left
        hy, hx = cy - 0.4 * r, cx - 0.4 * r
        d = np.sqrt((yy - hy) ** 2 + (xx - hx) ** 2) / (1.6 * r)
        lum = 1.25 - 0.85 * np.clip(d, 0, 1)
        white = np.clip(1.0 - d / 0.22, 0, 1) * 0.8
        return lum, white
    if material == "plastic":  # flat, saturated
        return np.full((size, size), 1.05) + rng.normal(0, 0.02, (size, size)), zeros
    if material == "fur":  # per-pixel high-frequency noise
        return rng.uniform(0.3, 1.25, (size, size)), zeros
    if material == "wood":  # concentric rings
        period = rng.uniform(3.0, 4.5)
        d = np.sqrt((yy - cy) ** 2 + (xx - cx) ** 2)
        return 0.8 + 0.35 * np.sin(2 * np.pi * d / period + rng.uniform(0, 2 * np.pi)), zeros
    raise ValueError(f"unknown thing material {material!r}")


def shape_mask(shape: str, size: int, cy: float, cx: float, r: float, rng: np.random.Generator) -> np.ndarray:
    yy, xx = _grid(size)
    theta = rng.uniform(0, np.pi)
    c, s = np.cos(theta), np.sin(theta)
    u = (xx - cx) * c + (yy - cy) * s
    v = -(xx - cx) * s + (yy - cy) * c
    aspect = rng.uniform(0.6, 1.0)
    if shape == "ellipse":
        return (u / r) ** 2 + (v / (r * aspect)) ** 2 <= 1.0
    if shape == "rectangle":
        return (np.abs(u) <= r * 0.9) & (np.abs(v) <= r * 0.9 * aspect)
    if shape == "diamond":
        return np.abs(u) / r + np.abs(v) / (r * aspect) <= 1.0
    if shape == "triangle":
        # upward triangle in the rotated frame: v in [-r, r/2], |u| <= (v + r) / sqrt(3)
        return (v <= r * 0.5) & (v >= -r) & (np.abs(u) <= (v + r) / np.sqrt(3))
    raise ValueError(f"unknown shape {shape!r}")


def stuff_layout(n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Amorphous partition into ``n`` regions: argmax over ``n`` random smooth fields."""
    if n == 1:
        return np.zeros((size, size), np.int64)
    yy, xx = _grid(size)
    fields = np.zeros((n, size, size))
    for k in range(n):
        for _ in range(3):
            f = rng.uniform(0.6, 2.2) * 2 * np.pi / size
            a = rng.uniform(0, 2 * np.pi)
            fields[k] += rng.uniform(0.5, 1.0) * np.sin(f * (xx * np.cos(a) + yy * np.sin(a)) + rng.uniform(0, 2 * np.pi))
    return fields.argmax(0)


def domain_shift(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Another camera: hue rotation (+-8 deg about the grey axis), lighting, contrast, sensor noise.

    The hue rotation stays well under half the gap between neighbouring colour
    names (orange sits ~27 deg from red and from yellow), so the shift changes
    the look of a class but never which name is right.
    """
    angle = np.deg2rad(rng.uniform(-8, 8))
    k = np.ones(3) / np.sqrt(3)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    rot = np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * (kx @ kx)  # Rodrigues
    img = image.astype(np.float64) @ rot.T
    img = (img - 128.0) * rng.uniform(0.7, 1.0) + 128.0 * rng.uniform(0.8, 1.15)
    img = img + rng.normal(0, 12.0, img.shape)
    return np.clip(img, 0, 255)


def render_scene(
    rng: np.random.Generator,
    size: int = 64,
    stuff_choices: Sequence[str] = (),
    thing_choices: Sequence[str] = (),
    n_stuff: Tuple[int, int] = (1, 3),
    n_things: Tuple[int, int] = (0, 4),
    plain_background: bool = False,
    shift: bool = False,
    fixed: Optional[Sequence[str]] = None,
) -> Scene:
    """Render one scene from the given class pools.

    Args:
        stuff_choices / thing_choices: class names the scene may draw from.
        n_stuff / n_things: inclusive ranges of region / instance counts.
        plain_background: neutral grey, unlabelled background instead of stuff
            (single-object scenes for image-level classification).
        fixed: exact class names to place (overrides the pools and counts);
            stuff names fill the background, thing names become instances.
    """
    if fixed is not None:
        stuff_names = [n for n in fixed if not _BY_NAME[n].isthing]
        thing_names = [n for n in fixed if _BY_NAME[n].isthing]
    else:
        stuff_names = []
        if not plain_background and stuff_choices:
            k = int(rng.integers(n_stuff[0], n_stuff[1] + 1))
            k = min(k, len(stuff_choices))
            stuff_names = [stuff_choices[i] for i in rng.choice(len(stuff_choices), k, replace=False)]
        thing_names = []
        if thing_choices:
            k = int(rng.integers(n_things[0], n_things[1] + 1))
            thing_names = [thing_choices[i] for i in rng.integers(0, len(thing_choices), k)]

    jitter = lambda: rng.uniform(-12, 12, 3)  # noqa: E731  per-region colour variation
    image = np.full((size, size, 3), NEUTRAL_GREY)
    classes = np.full((size, size), -1, np.int16)
    instances = np.zeros((size, size), np.int16)
    if stuff_names:
        layout = stuff_layout(len(stuff_names), size, rng)
        for k, name in enumerate(stuff_names):
            cls = _BY_NAME[name]
            m = layout == k
            lum = stuff_texture(cls.texture, size, rng)
            rgb = (_COLOUR_RGB[cls.colour] + jitter())[None, None, :] * lum[..., None]
            image[m] = rgb[m]
            classes[m] = cls.index
    things: List[Tuple[int, str, str]] = []
    for i, name in enumerate(thing_names, start=1):
        cls = _BY_NAME[name]
        r = rng.uniform(0.13, 0.26) * size
        cy, cx = rng.uniform(0.15 * size, 0.85 * size, 2)
        shape = SHAPES[int(rng.integers(0, len(SHAPES)))]
        m = shape_mask(shape, size, cy, cx, r, rng)
        lum, white = thing_material(cls.texture, size, cy, cx, r, rng)
        base = (_COLOUR_RGB[cls.colour] + jitter())[None, None, :] * lum[..., None]
        rgb = base * (1 - white[..., None]) + 255.0 * white[..., None]
        image[m] = rgb[m]
        classes[m] = cls.index
        instances[m] = i
        things.append((i, name, shape))
    if shift:
        image = domain_shift(image, rng)
    image = image + rng.normal(0, 3.0, image.shape)
    visible = set(np.unique(instances).tolist())
    things = [t for t in things if t[0] in visible]
    present = set(np.unique(classes).tolist())
    stuff_present = [n for n in dict.fromkeys(stuff_names) if _BY_NAME[n].index in present]
    return Scene(np.clip(np.rint(image), 0, 255).astype(np.uint8), classes, instances, stuff_present, things)


def class_info(name: str) -> SynthClass:
    return _BY_NAME[name]
