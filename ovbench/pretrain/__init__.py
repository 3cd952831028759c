"""The tiny CLIP of the embedded benchmark: open_clip config, contrastive pretraining, zero-shot evaluation."""
from ovbench.pretrain.model import MODEL_NAME, load_tiny_clip, register  # noqa: F401
