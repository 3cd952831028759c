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
#: v1: synth_large / synth_medium_shift / synth_small of 200 / 150 / 100 images (issues 1-18).
#: v2: the same world, training set and recipe; evaluation sets of 600 / 450 / 300 images, which
#:     halves the image-sampling noise that was as large as the seed noise on v1 (issue 20,
#:     docs/synthetic_benchmark.md, "The noise floor").
#: v3: v2's world and datasets; the recipe of configs/synth/_base_/tiny_cost_agg.py: the cost volume
#:     x22.9 before the head's embedding, the CLIP at 0.1x the head's learning rate (full fine-tuning
#:     0.03x, its peft.lr_mult), where v2 had x1 and 0.01x. Attention, LoRA, OFT and H-CLIP gain 9-15
#:     synth_large unseen mIoU; the seed sd is not lower; methods that train many CLIP weights can still
#:     stall on the early plateau at 0.1x (H-CLIP q=128: 1 seed of 3 in block_size's v3 re-run), and one
#:     rate of 0.03x for all undertrains the rest (reports/clip_rate_all) (issue 20; docs/synthetic_benchmark.md).
#: v4: v3's world, datasets and recipe with a one-stage decoder (output stride 4, as CAT-Seg's): the same
#:     scores and seed spread for H-CLIP q=32, training in 0.83x the time (issue 18; reports/decoder_v4).
WORLD_VERSION = "4"


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


def segmentation_unseen() -> List[str]:
    """Classes the segmentation training set never labels (a Latin square).

    Colour ``i`` loses stuff texture ``i mod 4`` and thing material
    ``(i + 1) mod 4``, so every colour and every texture is still labelled in
    other combinations: unseen classes are new *combinations* of seen words,
    which is what lets a frozen text encoder name them. 16 of 64 (25 %).
    """
    names = []
    for i, colour in enumerate(COLOURS):
        names.append(f"{colour} {STUFF_TEXTURES[i % 4]}")
        names.append(f"{colour} {THING_MATERIALS[(i + 1) % 4]}")
    return names


def held_out_of_pretraining() -> List[str]:
    """Combinations the tiny CLIP never sees (6, all inside :func:`segmentation_unseen`).

    Fewer than half of the unseen classes, as with real CLIP, which has seen
    most words a segmentation benchmark calls unseen.
    """
    unseen = segmentation_unseen()
    # colours 0, 3, 5 lose their unseen stuff; colours 1, 4, 6 their unseen thing.
    picks = [unseen[2 * 0], unseen[2 * 3], unseen[2 * 5], unseen[2 * 1 + 1], unseen[2 * 4 + 1], unseen[2 * 6 + 1]]
    return picks


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
    the benchmark has 1,900 images.
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
            tuple(seen), (("train", n(500)), ("val", n(50))), tuple(seen),
            description="scenes contain only seen classes, so nothing unseen is ever shown labelled or unlabelled",
        ),
        DatasetSpec(
            "synth_large", "ADE20K-847 (large vocabulary)",
            tuple(names), (("val", n(600)),), tuple(names),
            description="all 64 classes, stuff and things",
        ),
        DatasetSpec(
            "synth_medium_shift", "PASCAL-Context-59 / ADE20K-150 (medium vocabulary, other domain)",
            tuple(medium), (("val", n(450)),), tuple(medium), domain_shift=True,
            description="32 classes of 4 colours; hue rotation (<= 8 deg), lighting/contrast change and sensor noise",
        ),
        DatasetSpec(
            "synth_small", "PASCAL VOC-20 (small, object-centric vocabulary; background ignored)",
            tuple(small), (("val", n(300)),), tuple(small) + tuple(c.name for c in classes if not c.isthing),
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
