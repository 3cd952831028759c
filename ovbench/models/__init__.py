"""Models: CLIP wrappers, heads and segmentors, registered in MMSeg's MODELS."""
