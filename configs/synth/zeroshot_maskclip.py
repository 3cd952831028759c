# Zero-shot MaskCLIP (Zhou et al., ECCV 2022): the frozen tiny CLIP's dense
# value-path features classified against the vocabulary; nothing is trained.
# Evaluate with: ovbench test configs/synth/zeroshot_maskclip.py
_base_ = ['../_base_/default_runtime.py', './_base_/synth_ov.py', './_base_/tiny_cost_agg.py']
model = dict(aggregator=None, zero_shot_logit_scale=100.0)
