"""Metrics registered in MMSeg's METRICS, and multi-dataset evaluation."""
from ovbench.evaluation.alignment import AlignmentMetric  # noqa: F401
from ovbench.evaluation.multi_dataset import EVAL_DATASETS_KEY, eval_datasets_of, evaluate_datasets  # noqa: F401
from ovbench.evaluation.ov_iou_metric import OpenVocabIoUMetric  # noqa: F401
from ovbench.evaluation.panoptic_quality import PanopticQualityMetric, pq_average, pq_image_stats  # noqa: F401
from ovbench.evaluation.proposal_recall import ProposalRecallMetric  # noqa: F401
