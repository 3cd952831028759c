"""The tiny CLIP of the embedded benchmark: open_clip config, contrastive pretraining, zero-shot evaluation.

Import the submodules (``ovbench.pretrain.model``, ``.train``, ``.zeroshot``);
the package itself imports nothing, so ``ovbench pretrain-clip --help`` does not load torch.
"""
