# Zero-shot MaskCLIP (Zhou et al., ECCV 2022): the frozen tiny CLIP's dense features
# classified against the vocabulary; nothing is trained. dense='maskclip' because this row
# is the MaskCLIP baseline: its path (the last block's value path in place of attention,
# residual and MLP kept). Other paths on the same weights: reports/zeroshot/ (window3 scores
# higher on the tiny CLIP; override with --cfg-options model.clip.dense=window3).
# Evaluate with: ovbench test configs/synth/zeroshot_maskclip.py
_base_ = ['../_base_/default_runtime.py', './_base_/synth_ov.py', './_base_/tiny_cost_agg.py']
model = dict(aggregator=None, zero_shot_logit_scale=100.0, clip=dict(dense='maskclip'))
