"""Training: configs, the loop (``fit``), k-fold ensembles and distributed (torchrun/DDP) support."""

from fakescope.eval.metrics import choose_threshold as choose_threshold
from fakescope.eval.scoring import predict_scores as predict_scores
from fakescope.train.config import ConfigError as ConfigError
from fakescope.train.config import TrainConfig as TrainConfig
from fakescope.train.config import load_train_config as load_train_config
from fakescope.train.dist import init_distributed as init_distributed
from fakescope.train.dist import shutdown_distributed as shutdown_distributed
from fakescope.train.engine import TrainResult as TrainResult
from fakescope.train.engine import fit as fit
from fakescope.train.ensemble import EnsembleDetector as EnsembleDetector
from fakescope.train.ensemble import load_ensemble as load_ensemble
from fakescope.train.ensemble import load_model as load_model

__all__ = [
    "ConfigError",
    "EnsembleDetector",
    "TrainConfig",
    "TrainResult",
    "choose_threshold",
    "fit",
    "init_distributed",
    "load_ensemble",
    "load_model",
    "load_train_config",
    "predict_scores",
    "shutdown_distributed",
]
