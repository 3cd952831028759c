"""Metrics registered in MMSeg's METRICS."""
from ovbench.evaluation.ov_iou_metric import OpenVocabIoUMetric  # noqa: F401
