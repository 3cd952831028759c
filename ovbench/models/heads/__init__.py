"""Segmentation heads operating on CLIP features."""
from ovbench.models.heads.cost_aggregation import ClassAggregation, CostAggregator, SpatialAggregation  # noqa: F401
