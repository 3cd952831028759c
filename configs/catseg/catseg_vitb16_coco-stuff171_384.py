# CAT-Seg (Cho et al., CVPR 2024), ViT-B/16: CLIP fine-tuned in 'attention' mode
# (q and v projections + position embeddings of both encoders).
_base_ = [
    '../_base_/default_runtime.py',
    '../_base_/models/ov_cost_agg_vitb16.py',
    '../_base_/datasets/coco_stuff171_ov.py',
    '../_base_/schedules/catseg_80k.py',
    '../_base_/datasets/ov_eval_sets.py',
]
