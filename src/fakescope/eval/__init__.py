"""Evaluation: binary metrics, frame -> video aggregation, checkpoint reports and the run comparison table.

The names below are re-exported lazily, so that ``fakescope.eval.aggregate`` (which ``predict`` needs) does not
pull in scikit-learn, pandas and torch through the report modules.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "aggregate_scores": "fakescope.eval.aggregate",
    "confident_mean": "fakescope.eval.aggregate",
    "compare_runs": "fakescope.eval.compare",
    "cross_dataset_matrix": "fakescope.eval.compare",
    "binary_metrics": "fakescope.eval.metrics",
    "choose_threshold": "fakescope.eval.metrics",
    "eer": "fakescope.eval.metrics",
    "one_class_warning": "fakescope.eval.metrics",
    "evaluate_checkpoint": "fakescope.eval.report",
    "evaluate_scores": "fakescope.eval.report",
    "predict_scores": "fakescope.eval.scoring",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fakescope.eval' has no attribute {name!r}")
