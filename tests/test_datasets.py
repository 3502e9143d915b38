"""FaceDataset, transforms, class balancing and the epoch sampler."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from fakescope.data.datasets import EpochSampler, FaceDataset, class_balance, create_loader
from fakescope.data.manifest import normalize_manifest
from fakescope.data.transforms import AugmentConfig, augment_image, jpeg_roundtrip
from fakescope.errors import ManifestError, MediaError


def _write_crops(root: Path, labels: list[int], size: int = 48) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for i, label in enumerate(labels):
        img = rng.integers(0, 255, (size, size + 8, 3), dtype=np.uint8)  # not square: must be resized
        name = f"crops/{i:03d}.png"
        (root / "crops").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / name), img)
        rows.append({"video_id": f"v{i}", "label": label, "crop_path": name, "group_id": f"g{i // 2}"})
    return normalize_manifest(pd.DataFrame(rows))


def test_dataset_yields_model_input(tmp_path: Path) -> None:
    df = _write_crops(tmp_path, [0, 1, 0])
    ds = FaceDataset(df, tmp_path / "manifest.parquet", input_size=32)
    x, y, idx = ds[1]
    assert x.shape == (3, 32, 32) and x.dtype == torch.float32
    assert float(x.min()) >= 0.0 and float(x.max()) <= 1.0
    assert float(y) == 1.0 and idx == 1
    # evaluation samples are deterministic and not augmented
    assert torch.equal(ds[0][0], ds[0][0])


def test_augmentation_reproducible_per_seed_and_epoch(tmp_path: Path) -> None:
    df = _write_crops(tmp_path, [0, 1])
    cfg = AugmentConfig(flip=0.5, rotate_p=1.0, color_p=1.0, blur_p=0.5, jpeg_p=1.0)
    a = FaceDataset(df, tmp_path, 32, augment=cfg, seed=3)
    b = FaceDataset(df, tmp_path, 32, augment=cfg, seed=3)
    assert torch.equal(a[0][0], b[0][0])
    plain = FaceDataset(df, tmp_path, 32, augment=False)
    assert not torch.equal(a[0][0], plain[0][0])
    b.set_epoch(1)
    assert not torch.equal(a[0][0], b[0][0])


def test_augment_ops_keep_shape_and_dtype() -> None:
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    out = augment_image(img, AugmentConfig(flip=1.0, rotate_p=1.0, color_p=1.0, blur_p=1.0, jpeg_p=1.0), rng)
    assert out.shape == img.shape and out.dtype == np.uint8
    assert not np.array_equal(out, img)
    assert jpeg_roundtrip(img, 30).shape == img.shape
    assert augment_image(img, AugmentConfig(enabled=False), rng) is img


def test_self_blend_turns_reals_into_fakes(tmp_path: Path) -> None:
    df = _write_crops(tmp_path, [0, 0, 1], size=64)
    ds = FaceDataset(df, tmp_path, 64, augment=AugmentConfig(self_blend=1.0, flip=0, rotate_p=0, color_p=0, jpeg_p=0))
    x0, y0, _ = ds[0]
    assert float(y0) == 1.0  # a real crop became a self-blended fake
    assert not torch.equal(x0, FaceDataset(df, tmp_path, 64)[0][0])
    assert float(ds[2][1]) == 1.0  # fakes stay fakes


def test_missing_crop_names_the_file(tmp_path: Path) -> None:
    df = _write_crops(tmp_path, [0, 1])
    (tmp_path / df["crop_path"][0]).unlink()
    with pytest.raises(MediaError, match=r"000\.png"):
        FaceDataset(df, tmp_path, 32)[0]


def test_class_balance_weights_and_sampler(tmp_path: Path) -> None:
    labels = [0] * 18 + [1] * 2  # 9:1 imbalance
    cb = class_balance(np.array(labels))
    assert cb.counts == {0: 18, 1: 2}
    assert cb.weights[1] / cb.weights[0] == pytest.approx(9.0)
    assert cb.pos_weight == pytest.approx(9.0)
    df = _write_crops(tmp_path, labels, size=16)
    loader = create_loader(df, tmp_path, 16, batch_size=20, train=True, seed=0, balance=True, augment=False)
    drawn = []
    for epoch in range(30):
        loader.sampler.set_epoch(epoch)
        drawn.extend(int(y) for _, ys, _ in loader for y in ys)
    frac_fake = np.mean(drawn)
    assert 0.4 < frac_fake < 0.6  # balanced draws (unbalanced would give 0.1)
    unbalanced = create_loader(df, tmp_path, 16, batch_size=20, train=True, seed=0, balance=False, augment=False)
    assert np.mean([int(y) for _, ys, _ in unbalanced for y in ys]) == pytest.approx(0.1)


def test_one_class_training_set_is_refused() -> None:
    with pytest.raises(ManifestError, match="no fake"):
        class_balance(np.zeros(5))


@pytest.mark.parametrize("weighted", [False, True])
def test_sharded_sampler_reproduces_single_process_batches(weighted: bool) -> None:
    weights = np.linspace(1, 2, 23) if weighted else None
    single = EpochSampler(23, weights=weights, seed=5)
    single.set_epoch(2)
    shards = []
    for rank in range(2):
        s = EpochSampler(23, weights=weights, seed=5, rank=rank, world_size=2)
        s.set_epoch(2)
        shards.append(list(s))
    assert len(shards[0]) == len(shards[1]) == 12
    full = single.epoch_indices()
    # global batch 8 = 2 processes x 4: batch k of one process == union of batch k of both ranks
    for k in range(2):
        union = sorted(shards[0][4 * k : 4 * k + 4] + shards[1][4 * k : 4 * k + 4])
        assert union == sorted(full[8 * k : 8 * k + 8])
