"""Segmentors registered in MMSeg's MODELS (and the hook that feeds them a vocabulary)."""
from ovbench.models.segmentors.cost_agg_segmentor import OVCostAggSegmentor, per_pixel_bce  # noqa: F401
from ovbench.models.segmentors.vocabulary_hook import VocabularyHook  # noqa: F401
from ovbench.models.segmentors.mask_proposal_segmentor import MaskProposalSegmentor, load_mask_generator  # noqa: F401
from ovbench.models.segmentors.mask_class_segmentor import OVMaskClassSegmentor  # noqa: F401
