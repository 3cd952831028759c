"""Panoptic-quality speed and agreement: ovbench's vectorised PQ vs COCO's panopticapi.

Writes N synthetic gt/prediction pairs (default 500 at 256 x 256) as COCO
panoptic PNG + JSON to a temporary folder, then, in this one process, runs
panopticapi's single-process ``pq_compute_single_core`` and ovbench's
``pq_stats_from_files`` on the same files (both decode the PNGs), checks that
TP/FP/FN agree exactly and IoU sums, PQ, SQ, RQ per class to 1e-9, and prints
the times, end to end and with the PNGs decoded beforehand (compute alone).

panopticapi is COCO's reference (``pip install --no-deps panopticapi-lite==0.2.0``
ships its ``evaluation.py`` unchanged). Without it the comparison falls back to
``tests/pq_reference.py`` (a slow, literal reference) and says so.

    OMP_NUM_THREADS=1 python benchmarks/pq_speed.py [--images 500] [--size 256]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import os
import os.path as osp
import sys
import tempfile
import time

import numpy as np
from PIL import Image

import ovbench  # noqa: F401
from ovbench.data.panoptic_transforms import id_to_rgb, rgb_to_id
from ovbench.evaluation.panoptic_quality import (
    FN, FP, IOU, TP, pq_average, pq_image_stats, pq_per_class, pq_stats_from_files, read_panoptic_png)

NUM_CATEGORIES = 40  # ids 1, 4, 7, ... (non-contiguous, as COCO's); the first 24 are things


def make_pair(rng: np.random.Generator, size: int):
    """A gt map (stuff bands, thing ellipses, void edges, a crowd) and a shifted, noisy prediction."""
    yy, xx = np.mgrid[:size, :size]
    cat_of = {}

    def new_id(cat):
        while True:
            sid = int(rng.integers(1, 2 ** 24))  # COCO-style large ids
            if sid not in cat_of:
                cat_of[sid] = cat
                return sid

    gt = np.zeros((size, size), np.int64)
    cuts = np.sort(rng.choice(np.arange(size // 8, size - size // 8), int(rng.integers(2, 6)), replace=False))
    edges = [0, *cuts.tolist(), size]
    for a, b in zip(edges[:-1], edges[1:]):
        gt[a:b] = new_id(int(rng.integers(24, NUM_CATEGORIES)))
    crowd = set()
    for k in range(int(rng.integers(4, 20))):
        cy, cx = rng.integers(0, size, 2)
        ry, rx = rng.integers(size // 40 + 1, size // 6, 2)
        sid = new_id(int(rng.integers(0, 24)))
        gt[((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1] = sid
        if k == 0 and rng.random() < 0.4:
            crowd.add(sid)
    boundary = np.zeros_like(gt, bool)
    boundary[1:] |= gt[1:] != gt[:-1]
    boundary[:, 1:] |= gt[:, 1:] != gt[:, :-1]
    gt[boundary] = 0  # void along segment boundaries, as annotators leave it
    gt_segments = [{"id": sid, "category_id": 3 * cat_of[sid] + 1, "iscrowd": int(sid in crowd),
                    "area": int((gt == sid).sum())} for sid in np.unique(gt).tolist() if sid]

    dy, dx = rng.integers(-6, 7, 2)
    shifted = np.roll(gt, (int(dy), int(dx)), axis=(0, 1))
    rename = {}
    for sid in np.unique(shifted).tolist():
        if sid == 0:
            continue
        r = rng.random()
        if r < 0.08:
            rename[sid] = 0  # missed
        elif r < 0.15 and rename:
            rename[sid] = list(rename.values())[-1] or new_id(cat_of[sid])  # merged with the previous one
        else:
            cat = cat_of[sid] if rng.random() > 0.1 else int(rng.integers(0, NUM_CATEGORIES))
            rename[sid] = new_id(cat)
    keys = np.array(list(rename) + [0], np.int64)
    vals = np.array(list(rename.values()) + [0], np.int64)
    order = np.argsort(keys)
    pred = vals[order][np.searchsorted(keys[order], shifted)]
    for _ in range(int(rng.integers(0, 4))):  # hallucinated blobs
        cy, cx = rng.integers(0, size, 2)
        r = int(rng.integers(3, size // 10))
        pred[(yy - cy) ** 2 + (xx - cx) ** 2 <= r * r] = new_id(int(rng.integers(0, NUM_CATEGORIES)))
    pred_segments = [{"id": sid, "category_id": 3 * cat_of[sid] + 1, "iscrowd": 0}
                     for sid in np.unique(pred).tolist() if sid]
    return gt, gt_segments, pred, pred_segments


def write_files(root: str, n: int, size: int, seed: int):
    rng = np.random.default_rng(seed)
    for sub in ("gt", "pred"):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    gt_anns, pred_anns = [], []
    for k in range(n):
        gt, gs, pred, ps = make_pair(rng, size)
        name = f"{k:06d}.png"
        Image.fromarray(id_to_rgb(gt)).save(osp.join(root, "gt", name))
        Image.fromarray(id_to_rgb(pred)).save(osp.join(root, "pred", name))
        gt_anns.append({"image_id": k, "file_name": name, "segments_info": gs})
        pred_anns.append({"image_id": k, "file_name": name, "segments_info": ps})
    categories = [{"id": 3 * c + 1, "name": f"class{c}", "isthing": int(c < 24)} for c in range(NUM_CATEGORIES)]
    for sub, anns in (("gt", gt_anns), ("pred", pred_anns)):
        with open(osp.join(root, f"{sub}.json"), "w") as f:
            json.dump({"annotations": anns, "categories": categories,
                       "images": [{"id": k, "file_name": a["file_name"]} for k, a in enumerate(anns)]}, f)
    return list(zip(gt_anns, pred_anns)), categories


def best_of(repeat: int, fn):
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=int, default=500)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=3, help="time each side this many times, keep the best")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="pq_speed_") as root:
        t0 = time.perf_counter()
        pairs, categories = write_files(root, args.images, args.size, args.seed)
        print(f"wrote {args.images} gt/prediction pairs of {args.size}x{args.size} in {time.perf_counter() - t0:.1f} s "
              f"({sum(len(g['segments_info']) for g, _ in pairs) / len(pairs):.1f} gt and "
              f"{sum(len(p['segments_info']) for _, p in pairs) / len(pairs):.1f} predicted segments per image)")
        gt_dir, pred_dir = osp.join(root, "gt"), osp.join(root, "pred")
        cat_ids = sorted(c["id"] for c in categories)

        try:
            from panopticapi import evaluation
            from panopticapi.evaluation import pq_compute_single_core
        except ImportError:
            pq_compute_single_core = None
        if pq_compute_single_core is not None:
            name = "panopticapi.pq_compute_single_core"
            cats = {c["id"]: c for c in categories}

            def run_api():
                with contextlib.redirect_stdout(io.StringIO()):  # it prints every 100 images
                    stat = pq_compute_single_core(0, copy.deepcopy(pairs), gt_dir, pred_dir, cats)
                return np.array([[stat.pq_per_cat[c].iou, stat.pq_per_cat[c].tp, stat.pq_per_cat[c].fp,
                                  stat.pq_per_cat[c].fn] for c in cat_ids], np.float64)
        else:
            name = "tests/pq_reference.py (panopticapi NOT installed: slow literal reference, not COCO's code)"
            sys.path.insert(0, osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), "tests"))
            from pq_reference import reference_image_stats

            index = {c: k for k, c in enumerate(cat_ids)}

            def run_api():
                total = np.zeros((len(cat_ids), 4))
                for g, p in pairs:
                    conv = [[{"id": s["id"], "category": index[s["category_id"]], "iscrowd": s["iscrowd"]}
                             for s in a["segments_info"]] for a in (g, p)]
                    st = reference_image_stats(read_panoptic_png(osp.join(gt_dir, g["file_name"])), conv[0],
                                               read_panoptic_png(osp.join(pred_dir, p["file_name"])), conv[1])
                    for c, v in st.items():
                        total[c] += [v["iou"], v["tp"], v["fp"], v["fn"]]
                return total

        # Compute alone: the same runs with every PNG already decoded to its RGB array (panopticapi's
        # Image.open is pointed at the cache; both still convert RGB to ids and build their own tables).
        rgb = {osp.join(d, a["file_name"]): np.asarray(Image.open(osp.join(d, a["file_name"])))
               for g, p in pairs for d, a in ((gt_dir, g), (pred_dir, p))}
        index = {c: k for k, c in enumerate(cat_ids)}
        tables = [([{"id": s["id"], "category": index[s["category_id"]], "iscrowd": s["iscrowd"]}
                    for s in g["segments_info"]],
                   [{"id": s["id"], "category": index[s["category_id"]]} for s in p["segments_info"]])
                  for g, p in pairs]

        def ours_in_memory():
            total = np.zeros((len(cat_ids), 4))
            for (g, p), (gs, ps) in zip(pairs, tables):
                total += pq_image_stats(rgb_to_id(rgb[osp.join(gt_dir, g["file_name"])]), gs,
                                        rgb_to_id(rgb[osp.join(pred_dir, p["file_name"])]), ps, len(cat_ids))
            return total

        class FromMemory:
            open = staticmethod(rgb.__getitem__)

        def api_in_memory():
            if pq_compute_single_core is None:
                return reference_in_memory()
            saved, evaluation.Image = evaluation.Image, FromMemory
            try:
                return run_api()
            finally:
                evaluation.Image = saved

        def reference_in_memory():
            total = np.zeros((len(cat_ids), 4))
            for (g, p), (gs, ps) in zip(pairs, tables):
                st = reference_image_stats(rgb_to_id(rgb[osp.join(gt_dir, g["file_name"])]), gs,
                                           rgb_to_id(rgb[osp.join(pred_dir, p["file_name"])]), ps)
                for c, v in st.items():
                    total[c] += [v["iou"], v["tp"], v["fp"], v["fn"]]
            return total

        # interleaved repetitions, best of each, so a busy machine penalises both sides alike
        def decode_only():  # the floor for any reader of these files: PIL's PNG decoding, nothing else
            for g, p in pairs:
                for d, a in ((gt_dir, g), (pred_dir, p)):
                    with Image.open(osp.join(d, a["file_name"])) as im:
                        im.load()

        runs = {k: [] for k in ("ours", "api", "ours_mem", "api_mem", "decode")}
        reps = args.repeat if pq_compute_single_core is not None else 1
        for _ in range(reps):
            for key, fn in (("ours", lambda: pq_stats_from_files(pairs, gt_dir, pred_dir, categories)),
                            ("api", run_api), ("ours_mem", ours_in_memory), ("api_mem", api_in_memory),
                            ("decode", decode_only)):
                t, out = best_of(1, fn)
                runs[key].append(t)
                if key == "ours":
                    ours = out
                elif key == "api":
                    api = out
                elif key != "decode":
                    assert np.allclose(out, ours, rtol=0, atol=1e-9), key
        t_ours, t_api, t_ours_mem, t_api_mem, t_decode = (
            min(runs[k]) for k in ("ours", "api", "ours_mem", "api_mem", "decode"))

        # agreement: counts exactly, IoU sums and PQ/SQ/RQ per class to 1e-9
        assert np.array_equal(ours[:, [TP, FP, FN]], api[:, [TP, FP, FN]]), "TP/FP/FN differ"
        assert np.abs(ours[:, IOU] - api[:, IOU]).max() <= 1e-9, "IoU sums differ"
        po, pa = pq_per_class(ours), pq_per_class(api)
        for k in ("pq", "sq", "rq"):
            assert np.array_equal(np.isnan(po[k]), np.isnan(pa[k]))
            diff = np.nan_to_num(np.abs(po[k] - pa[k]))
            assert diff.max() <= 1e-9, f"per-class {k} differs by {diff.max()}"
        is_thing = np.array([cats_i["isthing"] == 1 for cats_i in sorted(categories, key=lambda c: c["id"])])
        print(f"\nreference: {name}")
        print(f"agreement: TP/FP/FN identical, IoU sums and per-class PQ/SQ/RQ within 1e-9 "
              f"({int((~np.isnan(po['pq'])).sum())} classes, {int(ours[:, TP].sum())} TP, "
              f"{int(ours[:, FP].sum())} FP, {int(ours[:, FN].sum())} FN)")
        for label, mask in (("All", None), ("Things", is_thing), ("Stuff", ~is_thing)):
            a = pq_average(ours, mask)
            print(f"  {label:<7} PQ {100 * a['pq']:6.2f}  SQ {100 * a['sq']:6.2f}  RQ {100 * a['rq']:6.2f}  n={a['n']}")
        n = len(pairs)
        print(f"\ntimes for {n} images, best of {args.repeat} (one process, OMP_NUM_THREADS="
              f"{os.environ.get('OMP_NUM_THREADS', 'unset')}):")
        print(f"  reference end-to-end      {t_api:7.3f} s  ({1e3 * t_api / n:6.2f} ms/image)")
        print(f"  ovbench   end-to-end      {t_ours:7.3f} s  ({1e3 * t_ours / n:6.2f} ms/image)")
        print(f"  speed ratio (end-to-end)  {t_api / t_ours:7.2f} x")
        print(f"  compute alone (PNGs decoded beforehand): reference {t_api_mem:6.3f} s "
              f"({1e3 * t_api_mem / n:.2f} ms/image), ovbench {t_ours_mem:6.3f} s ({1e3 * t_ours_mem / n:.2f} ms/image)"
              f" -> {t_api_mem / t_ours_mem:.2f} x")
        print(f"  PNG decoding alone (PIL) {t_decode:6.3f} s ({1e3 * t_decode / n:.2f} ms/image): "
              f"no reader of these files can beat the reference end to end by more than {t_api / t_decode:.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
