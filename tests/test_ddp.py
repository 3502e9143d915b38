"""Distributed data-parallel training on CPU (gloo): 2 processes reproduce one process; only rank 0 writes."""

from __future__ import annotations

import builtins
import os
import shutil
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from fakescope.data.manifest import normalize_manifest, write_manifest
from fakescope.train import TrainConfig, fit

# cnn has no BatchNorm (per-process BN statistics would differ from one process's) and dropout is off.
DDP_CFG = {
    "model": "cnn",
    "model_kwargs": {"drop_rate": 0.0, "hidden": 32},
    "epochs": 2,
    "max_steps_per_epoch": 2,
    "augment": False,
    "lr": 1e-3,
    "optimizer": "sgd",
    "patience": 0,
    "device": "cpu",
    "precise_bn_batches": 0,
    "cache_images": "true",
}
GLOBAL_BATCH = 8


@pytest.fixture(scope="module")
def random_manifest(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ddp_data")
    rng = np.random.default_rng(0)
    rows = []
    for i in range(36):
        split = "train" if i < 24 else "val"
        label = i % 2
        img = rng.integers(0, 255, (48, 48, 3), dtype=np.uint8)
        img[..., 0] = np.clip(img[..., 0].astype(int) + 60 * label, 0, 255)  # something learnable
        (root / "crops").mkdir(exist_ok=True)
        cv2.imwrite(str(root / f"crops/{i}.png"), img)
        rows.append({"video_id": f"v{i}", "label": label, "crop_path": f"crops/{i}.png", "split": split})
    return write_manifest(normalize_manifest(pd.DataFrame(rows)), root / "manifest.parquet")


def _guard_writes(out_dir: Path) -> None:
    """Make any write into ``out_dir`` by this process fail loudly (installed on ranks != 0)."""
    out = str(out_dir.resolve())
    real_open, real_replace = builtins.open, os.replace

    def guarded_open(file, mode="r", *args, **kwargs):
        if any(c in mode for c in "wax+") and str(Path(file).resolve()).startswith(out):
            raise AssertionError(f"rank != 0 tried to write {file}")
        return real_open(file, mode, *args, **kwargs)

    def guarded_replace(src, dst, *args, **kwargs):
        if str(Path(dst).resolve()).startswith(out):
            raise AssertionError(f"rank != 0 tried to write {dst}")
        return real_replace(src, dst, *args, **kwargs)

    builtins.open, os.replace = guarded_open, guarded_replace


def _worker(rank: int, world: int, manifest: str, out_dir: str, init_file: str) -> None:
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{init_file}", rank=rank, world_size=world, timeout=timedelta(seconds=120)
    )
    try:
        if rank != 0:
            _guard_writes(Path(out_dir))
        cfg = TrainConfig(**DDP_CFG, batch_size=GLOBAL_BATCH // world)
        fit(cfg, manifest, out_dir)
    finally:
        dist.destroy_process_group()


def _weights(run: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(run / "last.safetensors"))


def test_two_gloo_processes_match_one_process(random_manifest: Path, tmp_path: Path) -> None:
    import torch.multiprocessing as mp

    single = fit(TrainConfig(**DDP_CFG, batch_size=GLOBAL_BATCH), random_manifest, tmp_path / "single")
    ddp_dir = tmp_path / "ddp"
    mp.spawn(_worker, args=(2, str(random_manifest), str(ddp_dir), str(tmp_path / "pg_init")), nprocs=2, join=True)

    one = pd.read_csv(tmp_path / "single" / "steps.csv")
    two = pd.read_csv(ddp_dir / "steps.csv")
    assert len(one) == len(two) == 4
    np.testing.assert_allclose(two["loss"], one["loss"], rtol=1e-4, atol=1e-6)
    assert one["loss"].iloc[-1] != one["loss"].iloc[0]  # the curve moves: the comparison is not vacuous
    w1, w2 = _weights(tmp_path / "single"), _weights(ddp_dir)
    for k in w1:
        assert torch.allclose(w1[k], w2[k], atol=1e-5), k
    run = (ddp_dir / "run.json").read_text()
    assert run  # rank 0 wrote its run files; rank 1 would have failed on any write (see _guard_writes)
    cfg_text = (ddp_dir / "config.yaml").read_text()
    assert "world_size: 2" in cfg_text and f"global_batch_size: {GLOBAL_BATCH}" in cfg_text
    assert single.history[-1]["val_auc"] == pytest.approx(pd.read_csv(ddp_dir / "metrics.csv")["val_auc"].iloc[-1])


@pytest.mark.slow
def test_torchrun_cli_two_processes(random_manifest: Path, tmp_path: Path) -> None:
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not installed next to this Python")
    out = tmp_path / "run"
    cmd = [torchrun, "--standalone", "--nproc_per_node", "2", "-m", "fakescope", "train", "--manifest"]
    cmd += [str(random_manifest), "--out", str(out), "--model", "cnn", "--epochs", "1", "--batch-size", "4"]
    cmd += ["--set", "max_steps_per_epoch=2", "--set", "augment=false", "--set", "model_kwargs.hidden=32", "-q"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "best.safetensors").is_file()
    assert "global_batch_size: 8" in (out / "config.yaml").read_text()
