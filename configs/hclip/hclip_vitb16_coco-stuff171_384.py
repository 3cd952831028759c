# H-CLIP (Peng et al.; methods.md s.2) = the CAT-Seg segmentor + the hclip PEFT on
# both encoders: block-diagonal R (q = 128) on q/k/v (W R) and out (R W), exact
# Cayley orthogonality on the text encoder only (POF), DCRC in the paper's form.
# Every ablation axis is a key of model.clip.peft (sweep it with ablations/*.yaml).
_base_ = ['../catseg/catseg_vitb16_coco-stuff171_384.py']
model = dict(clip=dict(peft=dict(
    _delete_=True,
    type='hclip',
    q=128,                    # block size; must divide both encoders' widths
    orth='text',              # none | text | image | both
    orth_lambda=float('inf'), # inf = hard Cayley; > 0 soft penalty; 0 = unconstrained
    cayley='exact',           # exact | neumann
    dcrc='paper',             # None | 'paper' | 'release'
    symmetric='both',         # both | image | text
)))
# Paper: CLIP learning rate 5e-6 (= 2e-4 x 0.025); the released config uses 2e-6 (x 0.01).
optim_wrapper = dict(paramwise_cfg=dict(custom_keys={'backbone.clip': dict(lr_mult=0.025)}))
