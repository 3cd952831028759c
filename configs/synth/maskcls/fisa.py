# FISA (Chng et al., arXiv 2409.16278 v2): SEVE injects the vocabulary's text embeddings
# into the first two visual blocks (gated cross-attention, gate 0 at start); SIMO trains
# only the attention query projections of the image encoder, a separate delta for the
# mask tokens; mask embeddings from mask tokens (attention restricted to the mask).
# Block choices, depths and the loss are ovbench's reading (docs/fisa.md).
_base_ = ['./_base_.py']
model = dict(
    clip=dict(peft=dict(type='simo', image_tokens=True, mask_tokens=True, blocks=None)),
    seve=dict(blocks=(0, 1), dim=32, heads=1, gate_init=0.0),
    mask_embedding='tokens',
    mask_tokens=dict(num_blocks=2, bias='hard'),
)
