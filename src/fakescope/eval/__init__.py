"""Evaluation: binary metrics, frame -> video aggregation, checkpoint reports and the run comparison table."""

from fakescope.eval.aggregate import aggregate_scores as aggregate_scores
from fakescope.eval.aggregate import confident_mean as confident_mean
from fakescope.eval.compare import compare_runs as compare_runs
from fakescope.eval.compare import cross_dataset_matrix as cross_dataset_matrix
from fakescope.eval.metrics import binary_metrics as binary_metrics
from fakescope.eval.metrics import choose_threshold as choose_threshold
from fakescope.eval.metrics import eer as eer
from fakescope.eval.metrics import one_class_warning as one_class_warning
from fakescope.eval.report import evaluate_checkpoint as evaluate_checkpoint
from fakescope.eval.report import evaluate_scores as evaluate_scores

__all__ = [
    "aggregate_scores",
    "binary_metrics",
    "choose_threshold",
    "compare_runs",
    "confident_mean",
    "cross_dataset_matrix",
    "eer",
    "evaluate_checkpoint",
    "evaluate_scores",
    "one_class_warning",
]
