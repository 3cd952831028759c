# FC-CLIP-style baseline (Yu et al., NeurIPS 2023) on FISA's frozen mask generator: the
# CLIP classifier stays frozen (out-of-vocabulary scores p_out by mask pooling of
# MaskCLIP-path dense features), an in-vocabulary head on the generator's mask features
# is trained (p_in), and the two are ensembled geometrically, p = p_in^(1-a) p_out^a,
# with FC-CLIP's a = 0.4 (seen classes) and 0.8 (unseen).
_base_ = ['./fisa_vitb16_coco-panoptic.py']
model = dict(
    clip=dict(peft=dict(_delete_=True, type='frozen')),
    seve=None,
    mask_embedding='pooling',
    in_vocab_head=dict(hidden_dim=512, num_layers=2, use_queries=False),
    ensemble=dict(alpha_seen=0.4, alpha_unseen=0.8),
)
