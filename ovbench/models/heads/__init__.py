"""Segmentation heads operating on CLIP features."""
from ovbench.models.heads.cost_aggregation import ClassAggregation, CostAggregator, SpatialAggregation, ZeroShotCost  # noqa: F401
from ovbench.models.heads.mask_generator import QueryMaskGenerator  # noqa: F401
