"""Models: CLIP wrappers, heads and segmentors, registered in MMSeg's MODELS."""
from ovbench.models import clip, heads, optim, segmentors  # noqa: F401  (registration side effects)
