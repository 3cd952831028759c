"""The synthetic world's vocabulary: classes, splits and the evaluation vocabularies.

Every class is named ``"<colour> <texture>"``. Colours and textures are the
attributes a tiny ViT learns in minutes on a CPU (measured with the first
prototype: colour 99.7 % on unseen combinations, background texture 100 %
8-way), whereas outline shape stays near chance, so shapes are only a nuisance
here and never part of a name. Because the words compose, a text encoder that
learned ``"red"`` and ``"stripes"`` from other combinations can name
``"red stripes"`` without having seen it: the open-vocabulary mechanism of CLIP
(Radford et al., 2021) in miniature.

Two disjoint families, as in COCO-Stuff / COCO panoptic (Caesar et al., 2018;
Kirillov et al., 2019):

* **stuff**: amorphous background regions with a repeating texture
  (stripes, checks, dots, gravel);
* **things**: countable objects with a surface material (metal, plastic, fur,
  wood).

Two different meanings of "unseen" (kept apart on purpose):

* ``unseen`` (segmentation protocol): classes the segmentation *training* set
  never labels. As with real CLIP, most of them were seen by the CLIP during
  pretraining.
* ``held_out_of_pretraining``: attribute combinations the tiny CLIP never saw
  in an image or a caption (a subset of ``unseen``): the harder, compositional
  split, reported on its own.

All of this is emitted as JSON next to the data (``world.json`` and one
``vocabulary.json`` per dataset); the Python here only produces it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Tuple

#: colour name -> base RGB. Hues far apart so that mild domain shift keeps names valid.
COLOURS: Dict[str, Tuple[int, int, int]] = {
    "red": (215, 45, 45),
    "orange": (240, 140, 35),
    "yellow": (230, 215, 50),
    "green": (50, 165, 60),
    "cyan": (45, 195, 205),
    "blue": (45, 75, 215),
    "purple": (135, 55, 195),
    "pink": (240, 125, 185),
}
STUFF_TEXTURES: Tuple[str, ...] = ("stripes", "checks", "dots", "gravel")
THING_MATERIALS: Tuple[str, ...] = ("metal", "plastic", "fur", "wood")
#: outline shapes of things: a nuisance factor, never named (the prototype could not learn them)
SHAPES: Tuple[str, ...] = ("ellipse", "rectangle", "triangle", "diamond")

#: The embedded benchmark's version: the world, its datasets and the training recipe of configs/synth.
#: Figures of two versions are never comparable; trials record it and reports name it.
#: v1: 16 unseen classes (one Latin square), 500 training images, synth_large 200 images, a two-stage
#:     decoder (issues 1-18).
#: v2: 32 unseen classes (two squares), 1,000 training images, synth_large 400 images, a one-stage
#:     decoder (logits at 1/4 of the input, CAT-Seg's stride) (issue 20, docs/synthetic_benchmark.md).
WORLD_VERSION = "2"


@dataclass(frozen=True)
class SynthClass:
    """One class of the world."""

    index: int  # global id (position in :func:`all_classes`)
    name: str
    colour: str
    texture: str  # stuff texture or thing material
    isthing: bool


def all_classes() -> List[SynthClass]:
    """The 64 global classes: stuff first (colour-major), then things."""
    out: List[SynthClass] = []
    for isthing, textures in ((False, STUFF_TEXTURES), (True, THING_MATERIALS)):
        for colour in COLOURS:
            for tex in textures:
                out.append(SynthClass(len(out), f"{colour} {tex}", colour, tex, isthing))
    return out


def class_by_name() -> Dict[str, SynthClass]:
    return {c.name: c for c in all_classes()}


def _latin_square(stuff_shift: int, thing_shift: int) -> List[str]:
    """Colour ``i`` x stuff texture ``(i + stuff_shift) mod 4`` and thing material ``(i + thing_shift)
    mod 4``, for every colour, in colour order (stuff before thing)."""
    names = []
    for i, colour in enumerate(COLOURS):
        names.append(f"{colour} {STUFF_TEXTURES[(i + stuff_shift) % 4]}")
        names.append(f"{colour} {THING_MATERIALS[(i + thing_shift) % 4]}")
    return names


def segmentation_unseen() -> List[str]:
    """Classes the segmentation training set never labels (two Latin squares).

    Colour ``i`` loses stuff textures ``i`` and ``i + 1`` (mod 4) and thing materials ``i + 1`` and
    ``i + 2`` (mod 4), so every colour keeps two textures and two materials labelled, and every
    texture and material stays labelled with four colours: unseen classes are new *combinations*
    of seen words, which is what lets a frozen text encoder name them. 32 of 64 (50 %).

    Benchmark v1 had the first square alone (16 unseen). Averaging unseen mIoU over twice the
    classes halves the weight of each class's seed-to-seed swing, the largest part of the seed
    noise measured on v1 (docs/synthetic_benchmark.md, "Noise floor"); real large-vocabulary
    sets are mostly unseen too (most of ADE-847 is not in COCO-Stuff).
    """
    first, second = _latin_square(0, 1), _latin_square(1, 2)
    return first + second


def held_out_of_pretraining() -> List[str]:
    """Combinations the tiny CLIP never sees (6, all inside :func:`segmentation_unseen`).

    Fewer than half of the unseen classes, as with real CLIP, which has seen
    most words a segmentation benchmark calls unseen. Fixed by the shipped tiny CLIP's
    pretraining: they come from the first Latin square (benchmark v1's unseen classes).
    """
    first = _latin_square(0, 1)
    # colours 0, 3, 5 lose their unseen stuff; colours 1, 4, 6 their unseen thing.
    return [first[2 * 0], first[2 * 3], first[2 * 5], first[2 * 1 + 1], first[2 * 4 + 1], first[2 * 6 + 1]]


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset of the benchmark: its vocabulary, its scenes and its role."""

    name: str
    role: str  # the real dataset it stands for
    classes: Tuple[str, ...]  # labelled classes, in label-id order
    splits: Tuple[Tuple[str, int], ...]  # (split, number of images)
    scene_classes: Tuple[str, ...]  # classes that may appear in the images
    domain_shift: bool = False
    description: str = ""


def dataset_specs(scale: float = 1.0) -> List[DatasetSpec]:
    """Training set (COCO-Stuff role) and three evaluation sets (ADE-847 / PC-59 / VOC-20 roles).

    ``scale`` multiplies every split size (tests use a small one). At scale 1
    the benchmark has 1,700 images.
    """
    classes = all_classes()
    names = [c.name for c in classes]
    unseen = set(segmentation_unseen())
    seen = [n for n in names if n not in unseen]
    colours = list(COLOURS)

    def n(k: int) -> int:
        return max(2, int(round(k * scale)))

    medium_colours = set(colours[0::2])  # red, yellow, cyan, purple
    medium = [c.name for c in classes if c.colour in medium_colours]
    small = [c.name for c in classes if c.isthing and c.colour in set(colours[1::2])]
    return [
        DatasetSpec(
            "synth_train", "COCO-Stuff (training set: labels only the seen classes)",
            tuple(seen), (("train", n(1000)), ("val", n(50))), tuple(seen),
            description="scenes contain only seen classes, so nothing unseen is ever shown labelled or unlabelled",
        ),
        DatasetSpec(
            "synth_large", "ADE20K-847 (large vocabulary)",
            tuple(names), (("val", n(400)),), tuple(names),
            description="all 64 classes, stuff and things",
        ),
        DatasetSpec(
            "synth_medium_shift", "PASCAL-Context-59 / ADE20K-150 (medium vocabulary, other domain)",
            tuple(medium), (("val", n(150)),), tuple(medium), domain_shift=True,
            description="32 classes of 4 colours; hue rotation (<= 8 deg), lighting/contrast change and sensor noise",
        ),
        DatasetSpec(
            "synth_small", "PASCAL VOC-20 (small, object-centric vocabulary; background ignored)",
            tuple(small), (("val", n(100)),), tuple(small) + tuple(c.name for c in classes if not c.isthing),
            description="16 thing classes; stuff pixels are not in the vocabulary and carry 255",
        ),
    ]


def vocabulary_json(spec: DatasetSpec) -> dict:
    """The vocabulary file read by :class:`ovbench.data.OVSegDataset` (extra keys are informative)."""
    from ovbench.data.ov_dataset import default_palette

    unseen = set(segmentation_unseen())
    held = set(held_out_of_pretraining())
    by_name = class_by_name()
    return {
        "name": spec.name,
        "role": spec.role,
        "classes": list(spec.classes),
        "unseen": [c for c in spec.classes if c in unseen],
        "held_out_of_pretraining": [c for c in spec.classes if c in held],
        "things": [c for c in spec.classes if by_name[c].isthing],
        "palette": [list(p) for p in default_palette(len(spec.classes))],
        "domain_shift": spec.domain_shift,
        "description": spec.description,
    }


def world_json() -> dict:
    """Everything that defines the world, for ``world.json`` and the cache key."""
    return {
        "version": WORLD_VERSION,
        "colours": {k: list(v) for k, v in COLOURS.items()},
        "stuff_textures": list(STUFF_TEXTURES),
        "thing_materials": list(THING_MATERIALS),
        "shapes": list(SHAPES),
        "classes": [
            {"id": c.index, "name": c.name, "colour": c.colour, "texture": c.texture, "isthing": c.isthing}
            for c in all_classes()
        ],
        "segmentation_unseen": segmentation_unseen(),
        "held_out_of_pretraining": held_out_of_pretraining(),
    }


def pretraining_classes() -> List[str]:
    """Classes the tiny CLIP may see: all but :func:`held_out_of_pretraining`."""
    held = set(held_out_of_pretraining())
    return [c.name for c in all_classes() if c.name not in held]
