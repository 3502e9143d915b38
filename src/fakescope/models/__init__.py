"""Detector registry, model families and checkpoints.

Importing this package registers every family (``meso``, ``cnn``, ``resnet``, ``xception``, ``vit``,
``efficientnet``) and the named pretrained MesoNet detectors. Hugging Face classifiers are reached through
``create_detector("hf:<model id>")``.
"""

from fakescope.models import families as _families  # noqa: F401  (registers the builders)
from fakescope.models._cfg import DetectorCfg as DetectorCfg
from fakescope.models._registry import DEFAULT_PRETRAINED as DEFAULT_PRETRAINED
from fakescope.models._registry import count_parameters as count_parameters
from fakescope.models._registry import create_detector as create_detector
from fakescope.models._registry import describe_detector as describe_detector
from fakescope.models._registry import get_detector_cfg as get_detector_cfg
from fakescope.models._registry import list_detectors as list_detectors
from fakescope.models._registry import register_detector as register_detector
from fakescope.models.base import Detector as Detector
from fakescope.models.checkpoint import load_checkpoint as load_checkpoint
from fakescope.models.checkpoint import read_checkpoint_metadata as read_checkpoint_metadata
from fakescope.models.checkpoint import save_checkpoint as save_checkpoint
from fakescope.models.ensemble import EnsembleDetector as EnsembleDetector
from fakescope.models.ensemble import list_ensembles as list_ensembles
from fakescope.models.ensemble import register_ensemble as register_ensemble
from fakescope.models.inference import eval_mode as eval_mode
from fakescope.models.inference import predict_proba as predict_proba
from fakescope.models.loading import load_model as load_model

__all__ = [
    "DEFAULT_PRETRAINED",
    "Detector",
    "DetectorCfg",
    "EnsembleDetector",
    "count_parameters",
    "create_detector",
    "describe_detector",
    "eval_mode",
    "get_detector_cfg",
    "list_detectors",
    "list_ensembles",
    "load_checkpoint",
    "load_model",
    "predict_proba",
    "read_checkpoint_metadata",
    "register_detector",
    "register_ensemble",
    "save_checkpoint",
]
