"""Torch datasets and loaders over a manifest: face crops in, ``(x, y, row_index)`` out.

* :class:`FaceDataset` reads the crops of a manifest (paths relative to the manifest's folder), resizes them to
  the detector's ``input_size`` and, for training, augments them (see :mod:`fakescope.data.transforms`). Each
  sample's randomness comes from ``(seed, epoch, index)``, so results do not depend on the number of workers.
* :class:`EpochSampler` draws the indices of one epoch: a seeded permutation, or (class balancing) a seeded
  weighted draw with replacement, optionally sharded across distributed processes (rank ``r`` of ``W`` takes
  every ``W``-th index, so ``W`` processes with batch ``b`` see exactly the batches one process with ``W*b`` sees).
* :func:`create_loader` puts them together; :func:`class_balance` computes the per-class counts and weights.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from fakescope.data.transforms import AugmentConfig, augment_image, maybe_self_blend, resize_square, to_tensor
from fakescope.errors import ManifestError, MediaError

_logger = logging.getLogger(__name__)

#: Above this many bytes of decoded crops, ``cache="auto"`` does not keep them in memory.
CACHE_LIMIT_BYTES = 512 * 1024 * 1024


def _root_dir(root: str | Path) -> Path:
    root = Path(root)
    return root.parent if root.is_file() or root.suffix in (".parquet", ".csv") else root


def read_crop(path: Path) -> np.ndarray:
    """Read a crop as ``H,W,3`` uint8 RGB (grey and alpha images converted).

    Raises:
        MediaError: the file is missing or not a decodable image.
    """
    if not path.is_file():
        raise MediaError(path, "crop file not found")
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise MediaError(path, "not a decodable image")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


class FaceDataset(Dataset):
    """Face crops of a manifest as ``(x float32 3,S,S in [0, 1], y float32, row_index int)``.

    Args:
        df: manifest rows (any subset; ``row_index`` is the position in ``df``).
        root: the manifest's folder (or the manifest file itself); ``crop_path`` is relative to it.
        input_size: side ``S`` of the model's input (``model.cfg.input_size``).
        augment: ``False`` (evaluation), ``True`` (default augmentations) or an :class:`AugmentConfig`.
        seed: base seed of the per-sample augmentation generator.
        cache: keep decoded, resized crops in memory: ``True``, ``False`` or ``"auto"`` (when they fit in
            :data:`CACHE_LIMIT_BYTES`).
        interpolation: the detector's resize rule (``cfg.interpolation``; see :mod:`fakescope.data.contract`).
    """

    def __init__(
        self,
        df: pd.DataFrame,
        root: str | Path,
        input_size: int,
        augment: bool | AugmentConfig = False,
        seed: int = 0,
        cache: bool | str = False,
        interpolation: str = "area",
    ) -> None:
        if "crop_path" not in df.columns or "label" not in df.columns:
            raise ManifestError("FaceDataset needs the manifest columns 'crop_path' and 'label'")
        root = _root_dir(root)
        self.paths = [Path(p) if Path(p).is_absolute() else root / p for p in df["crop_path"].astype(str)]
        self.labels = df["label"].to_numpy().astype(np.int64)
        self.input_size = int(input_size)
        self.interpolation = interpolation
        self.augment = AugmentConfig.from_value(augment) if not isinstance(augment, AugmentConfig) else augment
        self.seed = int(seed)
        self.epoch = 0
        if cache == "auto":
            cache = len(self.paths) * self.input_size**2 * 3 <= CACHE_LIMIT_BYTES
        self._cache: list[np.ndarray | None] | None = [None] * len(self.paths) if cache else None

    def __len__(self) -> int:
        return len(self.paths)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose augmentation draws ``__getitem__`` reproduces."""
        self.epoch = int(epoch)

    def load(self, index: int) -> np.ndarray:
        """The crop at ``index`` resized to ``input_size`` (uint8 RGB), from the cache when enabled."""
        if self._cache is not None and self._cache[index] is not None:
            return self._cache[index]
        img = resize_square(read_crop(self.paths[index]), self.input_size, self.interpolation)
        if self._cache is not None:
            self._cache[index] = img
        return img

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        img = self.load(index)
        label = int(self.labels[index])
        if self.augment.enabled:
            rng = np.random.default_rng([self.seed, self.epoch, index])
            img, label = maybe_self_blend(img, label, self.augment, rng)
            img = augment_image(img, self.augment, rng)
        return to_tensor(img), torch.tensor(label, dtype=torch.float32), index


@dataclass(frozen=True)
class ClassBalance:
    """Per-class counts of a training set and the weights used to balance it.

    Attributes:
        counts: rows per class, ``{0: n_real, 1: n_fake}``.
        weights: sampling weight of one row of each class (``n / (2 * n_c)``; equal classes give 1.0).
        pos_weight: ``n_real / n_fake``, the loss weight of fakes when balancing through the loss.
    """

    counts: dict[int, int]
    weights: dict[int, float]
    pos_weight: float

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict."""
        return {
            "counts": {"real": self.counts[0], "fake": self.counts[1]},
            "weights": {"real": self.weights[0], "fake": self.weights[1]},
            "pos_weight": self.pos_weight,
        }


def class_balance(labels: np.ndarray | pd.Series) -> ClassBalance:
    """Counts and balancing weights of 0/1 labels.

    Raises:
        ManifestError: one class is absent (a detector cannot be trained on one class).
    """
    labels = np.asarray(labels).astype(np.int64)
    n = len(labels)
    counts = {0: int((labels == 0).sum()), 1: int((labels == 1).sum())}
    missing = [name for c, name in ((0, "real"), (1, "fake")) if counts[c] == 0]
    if missing:
        raise ManifestError(f"the training rows contain no {missing[0]} crops ({counts[0]} real, {counts[1]} fake)")
    weights = {c: n / (2.0 * counts[c]) for c in (0, 1)}
    return ClassBalance(counts=counts, weights=weights, pos_weight=counts[0] / counts[1])


class EpochSampler(Sampler[int]):
    """Seeded, epoch-aware, optionally weighted and sharded sampler.

    Args:
        n: dataset size.
        shuffle: draw a permutation (``False``: keep the order).
        weights: per-row sampling weights; when given, ``n`` rows are drawn with replacement (class balancing).
        seed: base seed; epoch ``e`` uses ``seed + e``.
        rank: this process's rank.
        world_size: number of processes; the epoch's index list is padded (by wrapping) to a multiple of it
            when ``pad`` and then rank ``r`` takes positions ``r, r + W, ...``.
        pad: pad to equal shard sizes (training) or not (evaluation: no duplicates, uneven shards).
    """

    def __init__(
        self,
        n: int,
        shuffle: bool = True,
        weights: np.ndarray | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        pad: bool = True,
    ) -> None:
        self.n = int(n)
        self.shuffle = shuffle
        self.weights = None if weights is None else torch.as_tensor(np.asarray(weights, dtype=np.float64))
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.pad = pad
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (its draw is ``seed + epoch``)."""
        self.epoch = int(epoch)

    def epoch_indices(self) -> list[int]:
        """All indices of the current epoch, before sharding."""
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        if self.weights is not None and self.n > 0:
            idx = torch.multinomial(self.weights, self.n, replacement=True, generator=g).tolist()
        elif self.shuffle:
            idx = torch.randperm(self.n, generator=g).tolist()
        else:
            idx = list(range(self.n))
        if self.pad and self.world_size > 1 and idx:
            total = math.ceil(len(idx) / self.world_size) * self.world_size
            idx = (idx * math.ceil(total / len(idx)))[:total]
        return idx

    def __iter__(self) -> Iterator[int]:
        return iter(self.epoch_indices()[self.rank :: self.world_size])

    def __len__(self) -> int:
        if self.pad:
            return math.ceil(self.n / self.world_size)
        return len(range(self.rank, self.n, self.world_size))


def create_loader(
    df: pd.DataFrame,
    root: str | Path,
    input_size: int,
    batch_size: int,
    train: bool,
    seed: int = 0,
    balance: bool = True,
    augment: bool | AugmentConfig | None = None,
    num_workers: int = 0,
    rank: int = 0,
    world_size: int = 1,
    cache: bool | str = False,
    pin_memory: bool = False,
    interpolation: str = "area",
) -> DataLoader:
    """A DataLoader over manifest rows.

    Args:
        df: manifest rows.
        root: the manifest's folder (or file).
        input_size: the model's input side.
        batch_size: per-process batch size.
        train: training order (seeded shuffle or balanced draw, padded shards) vs evaluation (fixed order).
        seed: seed of the order and of the augmentations.
        balance: for training, draw rows with class-balancing weights (see :func:`class_balance`).
        augment: augmentations (default: on for training, off for evaluation).
        num_workers: DataLoader worker processes.
        rank: this process's rank (distributed training).
        world_size: number of processes.
        cache: keep decoded crops in memory (``True``/``False``/``"auto"``).
        pin_memory: pin host memory (CUDA).
        interpolation: the detector's resize rule.
    """
    if augment is None:
        augment = train
    dataset = FaceDataset(
        df, root, input_size, augment=augment if train else False, seed=seed, cache=cache, interpolation=interpolation
    )
    weights = None
    if train and balance:
        cb = class_balance(dataset.labels)
        weights = np.where(dataset.labels == 1, cb.weights[1], cb.weights[0])
    sampler = EpochSampler(
        len(dataset), shuffle=train, weights=weights, seed=seed, rank=rank, world_size=world_size, pad=train
    )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=num_workers,
        pin_memory=pin_memory,
        drop_last=False,
        persistent_workers=False,
    )
