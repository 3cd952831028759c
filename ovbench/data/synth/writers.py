"""Write the benchmark to disk in the real formats, and cache it.

* semantic: MMSeg's ``img_dir/<split>/*.png`` + ``ann_dir/<split>/*.png``
  (label = index into the dataset's ``vocabulary.json``; 255 = ignore);
* panoptic: COCO panoptic (Kirillov et al., 2019): ``panoptic/<split>/*.png``
  with ids encoded as ``R + 256 G + 256^2 B`` and ``panoptic_<split>.json``
  with ``images``, ``annotations[].segments_info`` and ``categories`` (with
  ``isthing``). Pixels of classes outside the vocabulary are void (id 0).

Each image has its own seed ``(seed, dataset index, split index, image index)``,
so any image can be regenerated alone and the output does not depend on order.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Union

import numpy as np
from PIL import Image

from ovbench.data.synth.render import Scene, class_info, render_scene
from ovbench.data.synth.world import WORLD_VERSION, DatasetSpec, dataset_specs, vocabulary_json, world_json

IGNORE = 255
MANIFEST = "manifest.json"


def image_seed(seed: int, dataset_index: int, split_index: int, image_index: int) -> np.random.Generator:
    return np.random.default_rng([seed, dataset_index, split_index, image_index])


def render_for(spec: DatasetSpec, rng: np.random.Generator, size: int) -> Scene:
    stuff = [n for n in spec.scene_classes if not class_info(n).isthing]
    things = [n for n in spec.scene_classes if class_info(n).isthing]
    return render_scene(rng, size, stuff, things, n_stuff=(1, 3), n_things=(1, 4), shift=spec.domain_shift)


def semantic_label(scene: Scene, spec: DatasetSpec) -> np.ndarray:
    """Global class map -> vocabulary indices (uint8), 255 outside the vocabulary."""
    lut = np.full(65, IGNORE, np.uint8)  # index 64 <- global id -1 (unlabelled)
    for i, name in enumerate(spec.classes):
        lut[class_info(name).index] = i
    return lut[np.where(scene.classes < 0, 64, scene.classes)]


def panoptic_segments(scene: Scene, spec: DatasetSpec) -> tuple:
    """(H x W int32 segment ids, segments_info list). One segment per stuff class, one per thing instance."""
    vocab = {n: i for i, n in enumerate(spec.classes)}
    seg = np.zeros(scene.classes.shape, np.int32)
    info: List[dict] = []

    def add(mask: np.ndarray, name: str) -> None:
        sid = len(info) + 1
        seg[mask] = sid
        ys, xs = np.nonzero(mask)
        x0, y0 = int(xs.min()), int(ys.min())
        info.append({"id": sid, "category_id": vocab[name] + 1, "area": int(mask.sum()),
                     "bbox": [x0, y0, int(xs.max()) - x0 + 1, int(ys.max()) - y0 + 1], "iscrowd": 0})

    for name in scene.stuff:
        if name in vocab:
            m = (scene.classes == class_info(name).index) & (scene.instances == 0)
            if m.any():
                add(m, name)
    for inst, name, _shape in scene.things:
        if name in vocab:
            add(scene.instances == inst, name)
    return seg, info


def encode_panoptic(seg: np.ndarray) -> np.ndarray:
    return np.stack([seg % 256, (seg // 256) % 256, seg // 65536], -1).astype(np.uint8)


def decode_panoptic(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.int64)
    return rgb[..., 0] + 256 * rgb[..., 1] + 65536 * rgb[..., 2]


def write_dataset(root: Path, spec: DatasetSpec, dataset_index: int, seed: int, size: int) -> Dict[str, int]:
    """Write one dataset (all its splits) under ``root / spec.name``; returns images per split."""
    droot = root / spec.name
    vocab = vocabulary_json(spec)
    droot.mkdir(parents=True, exist_ok=True)
    (droot / "vocabulary.json").write_text(json.dumps(vocab, indent=1) + "\n")
    categories = [
        {"id": i + 1, "name": n, "isthing": int(class_info(n).isthing),
         "supercategory": "thing" if class_info(n).isthing else "stuff", "color": list(vocab["palette"][i])}
        for i, n in enumerate(spec.classes)
    ]
    counts = {}
    for split_index, (split, count) in enumerate(spec.splits):
        for sub in ("img_dir", "ann_dir", "panoptic"):
            (droot / sub / split).mkdir(parents=True, exist_ok=True)
        images, annotations = [], []
        for k in range(count):
            scene = render_for(spec, image_seed(seed, dataset_index, split_index, k), size)
            stem = f"{spec.name}_{split}_{k:05d}"
            Image.fromarray(scene.image).save(droot / "img_dir" / split / f"{stem}.png", compress_level=1)
            Image.fromarray(semantic_label(scene, spec)).save(droot / "ann_dir" / split / f"{stem}.png",
                                                              compress_level=1)
            seg, info = panoptic_segments(scene, spec)
            Image.fromarray(encode_panoptic(seg)).save(droot / "panoptic" / split / f"{stem}.png", compress_level=1)
            images.append({"id": k, "file_name": f"img_dir/{split}/{stem}.png", "height": size, "width": size})
            annotations.append({"image_id": k, "file_name": f"{stem}.png", "segments_info": info})
        (droot / f"panoptic_{split}.json").write_text(json.dumps(
            {"info": {"description": f"ovbench synthetic {spec.name} ({spec.role})", "seed": seed},
             "images": images, "annotations": annotations, "categories": categories}))
        counts[split] = count
    return counts


def generate_benchmark(out: Union[str, os.PathLike], seed: int = 0, size: int = 64, scale: float = 1.0,
                       verbose: bool = False) -> dict:
    """Write the training set and the evaluation sets under ``out``; returns the manifest."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    (out / "world.json").write_text(json.dumps(world_json(), indent=1) + "\n")
    datasets = {}
    for i, spec in enumerate(dataset_specs(scale)):
        datasets[spec.name] = {"role": spec.role, "splits": write_dataset(out, spec, i, seed, size),
                               "classes": len(spec.classes), "domain_shift": spec.domain_shift}
        if verbose:
            print(f"  {spec.name:<20} {datasets[spec.name]['splits']}  ({spec.role})")
    manifest = {"benchmark": f"synth v{WORLD_VERSION}", "key": cache_key(seed, size, scale), "seed": seed,
                "size": size, "scale": scale,
                "datasets": datasets, "images": sum(sum(d["splits"].values()) for d in datasets.values()),
                "seconds": round(time.time() - t0, 2)}
    (out / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return manifest


def cache_key(seed: int, size: int, scale: float) -> str:
    """Changes whenever the world, the dataset specs or the generator's code change."""
    h = hashlib.sha256(json.dumps([world_json(), seed, size, scale]).encode())
    here = Path(__file__).resolve().parent
    for name in ("world.py", "render.py", "writers.py"):
        h.update((here / name).read_bytes())
    return h.hexdigest()[:12]


def default_cache_root() -> Path:
    base = os.environ.get("OVBENCH_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "ovbench")
    return Path(base) / "synth"


def ensure_synth_benchmark(root: Optional[Union[str, os.PathLike]] = None, seed: int = 0, size: int = 64,
                           scale: float = 1.0, force: bool = False) -> Path:
    """The benchmark's directory, generating it on first use.

    Default location ``$OVBENCH_CACHE/synth/<key>`` (``~/.cache/ovbench`` without
    the variable), where ``key`` hashes the world and the generator's code, so a
    changed generator never reads a stale cache. Generation writes to a
    temporary sibling and renames it, so an interrupted run leaves no half cache.
    """
    key = cache_key(seed, size, scale)
    target = Path(root) if root is not None else default_cache_root() / key
    if not force and _complete(target, key):
        return target
    tmp = target.with_name(target.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    generate_benchmark(tmp, seed=seed, size=size, scale=scale)
    if not force and _complete(target, key):
        # another process (a second rank, a parallel `ovbench train`) finished first and may be reading
        # its copy: keep it, drop ours
        shutil.rmtree(tmp, ignore_errors=True)
        return target
    if target.exists():
        shutil.rmtree(target)
    tmp.rename(target)
    return target


def _complete(folder: Path, key: str) -> bool:
    """Whether ``folder`` holds a whole benchmark of cache key ``key`` (its manifest is written last)."""
    try:
        return json.loads((folder / MANIFEST).read_text()).get("key") == key
    except (OSError, ValueError, AttributeError):
        return False


def benchmark_of(dataset_root: Union[str, os.PathLike]) -> Optional[str]:
    """``'synth v2 (key 1a2b3c4d5e6f)'`` for a dataset folder of a generated embedded benchmark (its
    parent holds the manifest); None for any other data (real sets, the toy set, a copy from before
    manifests named their version)."""
    try:
        manifest = json.loads((Path(dataset_root).parent / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    name = manifest.get("benchmark") if isinstance(manifest, dict) else None
    return f"{name} (key {manifest.get('key')})" if name else None


def benchmark_version(roots: Mapping[str, str]) -> Optional[str]:
    """The embedded benchmark's version a study's sets ``{name: folder}`` come from (``synth v2 (key ...)``),
    None for other data: figures of two versions are never comparable, so every result and report names it."""
    found = sorted({v for v in (benchmark_of(root) for root in roots.values()) if v})
    return ", ".join(found) or None
