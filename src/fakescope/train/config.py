"""TrainConfig: every knob of a training run, as one frozen dataclass, loadable from YAML with overrides.

Resolution order (later wins): dataclass defaults < YAML file < ``--set key=value`` overrides < direct CLI flags.
Nested augmentation keys use dots: ``--set augment.self_blend=0.3``; model builder arguments likewise:
``--set model_kwargs.drop_rate=0``. The resolved config is written to every run directory (``config.yaml``).
"""

from __future__ import annotations

import functools
import typing
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import yaml
from pydantic import ConfigDict, TypeAdapter, ValidationError

from fakescope.data.transforms import AugmentConfig
from fakescope.errors import FakescopeError

OPTIMIZERS = ("adam", "adamw", "rmsprop", "sgd")
SCHEDULERS = ("none", "step", "cosine", "warmup_cosine")
BALANCE = ("sampler", "loss", "none")


class ConfigError(FakescopeError, ValueError):
    """A training config (YAML file or override) is invalid; the message names the key and the valid choices."""


@dataclass(frozen=True)
class TrainConfig:
    """A training run.

    Attributes:
        model: registered detector name (``meso4``, ``efficientnet_b0``, or ``arch.tag`` pretrained weights).
        model_kwargs: builder arguments (``drop_rate``...).
        pretrained: start from the backbone's ImageNet weights (offline folder, torchvision's cache, or a download).
        pretrained_dir: offline folder holding the ImageNet file (``--from DIR``; None: cache or download).
        input_size: model input side (None: the architecture's default); the crops are resized to it.
        init_checkpoint: a fakescope ``.safetensors`` checkpoint to start from (``--weights``).
        epochs: maximum number of epochs.
        batch_size: batch size *per process*; the global batch is ``batch_size * world_size``.
        eval_batch_size: validation batch size (default ``2 * batch_size``).
        lr: learning rate (for the global batch when ``scale_lr`` is off).
        scale_lr: multiply ``lr`` by the world size (linear scaling rule) under distributed training.
        optimizer: ``adam``, ``adamw``, ``rmsprop`` or ``sgd``.
        weight_decay: L2 / decoupled weight decay.
        momentum: momentum of sgd and rmsprop.
        scheduler: ``none``, ``step`` (``gamma`` every ``step_size`` epochs), ``cosine`` (per epoch, to ``min_lr``)
            or ``warmup_cosine`` (per optimiser step: linear warm-up over ``warmup_steps``, then cosine to
            ``min_lr`` at the last step of the last epoch).
        warmup_steps: warm-up length of ``warmup_cosine``, in optimiser steps.
        step_size: epochs between step-schedule decays.
        gamma: step-schedule decay factor.
        min_lr: final learning rate of the cosine schedule.
        freeze_backbone_epochs: train only the head for this many epochs, then unfreeze the backbone.
        balance: class balancing: ``sampler`` (weighted sampling, default), ``loss`` (BCE ``pos_weight``) or
            ``none``.
        augment: augmentations (see :class:`fakescope.data.transforms.AugmentConfig`).
        patience: early stopping after this many epochs without a better validation AUC (0: off).
        seed: seed of weights, data order, augmentation and dropout.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:1``...
        amp: mixed precision (autocast) on CUDA; ignored on CPU.
        num_workers: DataLoader workers per process.
        cache_images: keep decoded crops in memory: ``auto`` (when they fit in 512 MB), ``true``, ``false``.
        max_steps_per_epoch: cap on optimiser steps per epoch (smoke tests, benchmarks); ``None``: full epochs.
        grad_clip: clip the gradient norm to this value (``None``: off).
        precise_bn_batches: before each validation, recompute BatchNorm running statistics as an exact average
            over this many training batches (0: off). Short runs need it: with a slow BN momentum (MesoNet's
            Keras-style 0.99) the running statistics lag far behind the weights for the first hundreds of steps.
        folds: ``K > 1`` trains a K-fold ensemble on group-disjoint folds of train+val.
        adv: adversarial training attack (``fgsm``, ``fgsm_rs``, ``pgd_linf``...; ``None``: off).
        adv_eps: L-inf budget of the adversarial training attack, in [0, 1] pixel units.
        adv_steps: attack steps (PGD).
        adv_ratio: weight of the adversarial loss (``(1 - r) * clean + r * adversarial``).
        adv_eval_images: after adversarial training, validation images (balanced sample) scored clean and under
            PGD-10 L-inf at ``adv_eps`` for the clean-versus-robust report (``robustness.json``; 0: skip).
        real_only: train on the real rows only (the self-blended-images recipe: every fake the model sees is made
            by ``augment.self_blend`` from a real crop); needs ``augment.self_blend > 0`` and ``balance: none``.
        train_split: manifest split used for training.
        val_split: manifest split used for validation (model selection, threshold).
    """

    model: str = "meso4"
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    pretrained: bool = False
    pretrained_dir: str | None = None
    input_size: int | None = None
    init_checkpoint: str | None = None
    epochs: int = 10
    batch_size: int = 32
    eval_batch_size: int | None = None
    lr: float = 1e-3
    scale_lr: bool = False
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    scheduler: str = "none"
    step_size: int = 5
    gamma: float = 0.1
    min_lr: float = 0.0
    warmup_steps: int = 0
    freeze_backbone_epochs: int = 0
    balance: str = "sampler"
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    patience: int = 5
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    num_workers: int = 0
    cache_images: str = "auto"
    max_steps_per_epoch: int | None = None
    grad_clip: float | None = None
    precise_bn_batches: int = 10
    folds: int = 1
    adv: str | None = None
    adv_eps: float = 2.0 / 255.0
    adv_steps: int = 5
    adv_ratio: float = 0.5
    adv_eval_images: int = 200
    real_only: bool = False
    train_split: str = "train"
    val_split: str = "val"

    def __post_init__(self) -> None:
        if not isinstance(self.augment, AugmentConfig):
            object.__setattr__(self, "augment", _coerce("augment", self.augment))
        if isinstance(self.cache_images, bool):
            object.__setattr__(self, "cache_images", "true" if self.cache_images else "false")
        checks = (
            ("optimizer", self.optimizer, OPTIMIZERS),
            ("scheduler", self.scheduler, SCHEDULERS),
            ("balance", self.balance, BALANCE),
            ("cache_images", self.cache_images, ("auto", "true", "false")),
        )
        for key, value, choices in checks:
            if value not in choices:
                raise ConfigError(f"{key}={value!r} is not valid; choose one of {list(choices)}")
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "folds": self.folds}
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"{key} must be >= 1 (got {value})")
        if self.lr <= 0:
            raise ConfigError(f"lr must be > 0 (got {self.lr})")
        if not 0.0 <= self.adv_ratio <= 1.0:
            raise ConfigError(f"adv_ratio must be in [0, 1] (got {self.adv_ratio})")
        if self.real_only and (not self.augment.enabled or self.augment.self_blend <= 0 or self.balance != "none"):
            raise ConfigError("real_only needs augment.self_blend > 0 (the fakes) and balance: none")
        if self.adv_eval_images < 0:
            raise ConfigError(f"adv_eval_images must be >= 0 (got {self.adv_eval_images})")

    def to_dict(self) -> dict[str, Any]:
        """A plain dict (for YAML, JSON and checkpoint metadata)."""
        d = asdict(self)
        d["augment"] = self.augment.to_dict()
        return d

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with some fields changed (values are coerced like YAML values)."""
        return replace(self, **{k: _coerce(k, v) for k, v in changes.items()})


@functools.cache
def _field_types() -> dict[str, Any]:
    """TrainConfig's field types, resolved once (``get_type_hints`` evaluates every annotation)."""
    return typing.get_type_hints(TrainConfig)


@functools.cache
def _adapter(key: str) -> TypeAdapter:
    """pydantic's validator of one TrainConfig field (lax mode: "3" -> 3, "true" -> True; 2.5 is no int)."""
    return TypeAdapter(_field_types()[key], config=ConfigDict(coerce_numbers_to_str=True))


def _coerce(key: str, value: Any) -> Any:
    """A YAML/CLI value checked and converted to the type of TrainConfig field ``key`` (pydantic)."""
    if key not in _field_types():
        raise ConfigError(f"unknown config key {key!r}; valid keys: {', '.join(sorted(_field_types()))}")
    if key == "augment":
        try:
            return AugmentConfig.from_value(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"augment: {exc}") from exc
    if key == "cache_images" and isinstance(value, bool):
        return "true" if value else "false"
    optional = type(None) in typing.get_args(_field_types()[key])
    if optional and isinstance(value, str) and value.lower() in ("none", "null", "~"):
        value = None  # "none" is a value of its own for scheduler ("none") and the like
    try:
        return _adapter(key).validate_python(value)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"]
        if value is None:
            raise ConfigError(f"{key} cannot be empty") from None
        raise ConfigError(f"{key}={value!r} is not valid: {reason}") from None


def _parse_override(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not of the form key=value")
    key, _, raw = text.partition("=")
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _set_nested(data: dict[str, Any], key: str, value: Any) -> None:
    head, _, rest = key.partition(".")
    if not rest:
        data[head] = value
        return
    if head not in ("augment", "model_kwargs"):
        raise ConfigError(f"{key!r}: only augment.* and model_kwargs.* take nested keys")
    sub = data.get(head)
    if isinstance(sub, AugmentConfig):
        sub = sub.to_dict()
    elif sub is None or isinstance(sub, bool):
        sub = {"enabled": bool(sub)} if head == "augment" and sub is not None else {}
    sub = dict(sub)
    sub[rest] = value
    data[head] = sub


def load_train_config(
    yaml_path: str | Path | None = None,
    overrides: list[str] | dict[str, Any] | None = None,
    **values: Any,
) -> TrainConfig:
    """Resolve a TrainConfig from defaults, an optional YAML file, ``key=value`` overrides and keyword values.

    Args:
        yaml_path: a YAML mapping of TrainConfig keys (``augment`` may be a nested mapping or a bool).
        overrides: ``["epochs=3", "augment.flip=0"]`` or a dict; values are parsed as YAML scalars.
        **values: highest-priority values (direct CLI flags); ``None`` values are ignored.

    Raises:
        ConfigError: unreadable YAML, unknown keys (the valid ones are listed), or invalid values.
    """
    data: dict[str, Any] = {}
    if yaml_path is not None:
        path = Path(yaml_path)
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: expected a mapping of config keys at the top level")
        loaded.pop("description", None)
        for k, v in loaded.items():
            _set_nested(data, str(k), v)
    items = overrides.items() if isinstance(overrides, dict) else [_parse_override(o) for o in overrides or []]
    for k, v in items:
        _set_nested(data, k, v)
    for k, v in values.items():
        if v is not None:
            _set_nested(data, k, v)
    return TrainConfig(**{k: _coerce(k, v) for k, v in data.items()})


def config_keys() -> list[str]:
    """The valid top-level config keys."""
    return [f.name for f in fields(TrainConfig)]
