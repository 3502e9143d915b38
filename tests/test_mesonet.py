"""The authors' MesoNet Keras weights, imported: the four MesoNet sample faces, offline and verified fetching."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakescope.errors import CheckpointError, DownloadError
from fakescope.models import create_detector, get_detector_cfg
from fakescope.models.families.meso import load_mesonet_keras_weights
from fakescope.utils.download import fetch_file, sha256_file

SAMPLES = {
    "fake/mesonet_df00204.jpg": 1,
    "fake/mesonet_df01254.jpg": 1,
    "real/mesonet_real00240.jpg": 0,
    "real/mesonet_real00772.jpg": 0,
}


@pytest.fixture(scope="module")
def mesonet_dir(shared_data: Path) -> Path:
    path = shared_data / "weights" / "mesonet"
    if not path.is_dir():
        pytest.skip("MesoNet weights are not in ../shared/data")
    return path


@pytest.fixture(scope="module")
def samples(shared_data: Path) -> tuple[torch.Tensor, np.ndarray]:
    images, labels = [], []
    for rel, label in SAMPLES.items():
        img = Image.open(shared_data / "dev" / "images" / rel).convert("RGB").resize((256, 256), Image.BILINEAR)
        images.append(np.asarray(img, dtype=np.float32) / 255.0)
        labels.append(label)
    x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return x, np.array(labels)


@pytest.mark.parametrize("name", ["meso4.mesonet_df", "mesoinception4.mesonet_df"])
def test_imported_mesonet_classifies_the_authors_samples(name: str, mesonet_dir: Path, samples: tuple) -> None:
    x, labels = samples
    model = create_detector(name, weights_dir=mesonet_dir).eval()
    p_fake = model.predict_proba(x).numpy()
    assert ((p_fake > 0.5).astype(int) == labels).all(), dict(zip(SAMPLES, p_fake.round(4).tolist(), strict=True))
    # confident, and in the right direction (a missed flip of the P(real) output would invert all four)
    assert p_fake[labels == 1].min() > 0.8
    assert p_fake[labels == 0].max() < 0.2


@pytest.mark.parametrize("name", ["meso4.mesonet_f2f", "mesoinception4.mesonet_f2f"])
def test_f2f_weights_import(name: str, mesonet_dir: Path, samples: tuple) -> None:
    model = create_detector(name, weights_dir=mesonet_dir).eval()
    assert model.cfg.tag == "mesonet_f2f"
    p = model.predict_proba(samples[0])
    assert p.shape == (4,) and torch.isfinite(p).all()


def test_flatten_order_matters(mesonet_dir: Path, samples: tuple) -> None:
    """The Dense-after-Flatten permutation is needed: without it the imported model gives other outputs."""
    x, _ = samples
    model = create_detector("meso4.mesonet_df", weights_dir=mesonet_dir).eval()
    feats = model.forward_features(x)
    w = model.head[1].weight.detach().clone()
    side, ch = 8, 16
    # Undo the permutation: torch (c, h, w) order back to Keras (h, w, c) order.
    unpermuted = w.reshape(16, ch, side, side).permute(0, 2, 3, 1).reshape(16, -1)
    with torch.no_grad():
        good = model.forward_head(feats)
        model.head[1].weight.copy_(unpermuted)
        bad = model.forward_head(feats)
    assert not torch.allclose(good, bad, atol=1e-2)


def test_pretrained_cfg_declares_source_and_provenance() -> None:
    cfg = get_detector_cfg("mesoinception4.mesonet_df")
    assert cfg.url == "https://github.com/DariusAf/MesoNet/raw/master/weights/MesoInception_DF.h5"
    assert len(cfg.sha256) == 64
    assert cfg.input_size == 256 and cfg.mean == (0.0, 0.0, 0.0) and cfg.std == (1.0, 1.0, 1.0)
    assert cfg.license.startswith("Apache-2.0") and cfg.trained_on


def test_sha256_in_registry_matches_the_files(mesonet_dir: Path) -> None:
    sums = dict(reversed(line.split()) for line in (mesonet_dir / "SHA256SUMS").read_text().splitlines() if line)
    for name in ("meso4.mesonet_df", "meso4.mesonet_f2f", "mesoinception4.mesonet_df", "mesoinception4.mesonet_f2f"):
        cfg = get_detector_cfg(name)
        assert cfg.sha256 == sums[cfg.filename] == sha256_file(mesonet_dir / cfg.filename)


def test_wrong_file_for_the_architecture_is_refused(mesonet_dir: Path) -> None:
    model = create_detector("mesoinception4")
    with pytest.raises(CheckpointError, match=r"Meso4_DF\.h5"):
        load_mesonet_keras_weights(model, mesonet_dir / "Meso4_DF.h5")


def test_fetch_with_wrong_sha256_is_refused(mesonet_dir: Path, tmp_path: Path) -> None:
    local = tmp_path / "weights"
    local.mkdir()
    shutil.copy(mesonet_dir / "Meso4_DF.h5", local / "Meso4_DF.h5")
    cfg = get_detector_cfg("meso4.mesonet_df")
    assert fetch_file(cfg.url, cfg.sha256, filename=cfg.filename, local_dir=local) == local / "Meso4_DF.h5"
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        fetch_file(cfg.url, "0" * 64, filename=cfg.filename, local_dir=local)
    # a tampered copy is refused by name too
    with open(local / "Meso4_DF.h5", "ab") as f:
        f.write(b"\0")
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        create_detector("meso4.mesonet_df", weights_dir=local)


def test_download_route_verifies_and_caches(mesonet_dir: Path, tmp_path: Path) -> None:
    """The download path (a file:// URL standing in for GitHub) checks the digest and fills the cache."""
    src = tmp_path / "remote" / "Meso4_DF.h5"
    src.parent.mkdir()
    shutil.copy(mesonet_dir / "Meso4_DF.h5", src)
    cfg = get_detector_cfg("meso4.mesonet_df")
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        fetch_file(src.as_uri(), "f" * 64, filename=cfg.filename, cache_dir=cache)
    assert not (cache / cfg.filename).exists()
    assert not [p for p in cache.glob("*") if p.is_file()]  # nothing half-written left behind
    got = fetch_file(src.as_uri(), cfg.sha256, filename=cfg.filename, cache_dir=cache)
    assert got == cache / cfg.filename and sha256_file(got) == cfg.sha256
    # cached: served without the source
    src.unlink()
    assert fetch_file(src.as_uri(), cfg.sha256, filename=cfg.filename, cache_dir=cache) == got
    model = create_detector("meso4.mesonet_df", cache_dir=cache)
    assert model.cfg.name == "meso4.mesonet_df"


def test_offline_folder_without_the_file_says_so(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match=r"Meso4_DF\.h5"):
        create_detector("meso4.mesonet_df", weights_dir=tmp_path)


def test_bundled_f2f_copy_equals_the_authors_file(mesonet_dir: Path, tmp_path: Path) -> None:
    """The package's copy of MesoInception_F2F.h5 (the default panel's member) is that file's import, exactly."""
    bundled = create_detector("mesoinception4.mesonet_f2f", cache_dir=tmp_path / "empty").eval()  # no download
    model = create_detector("mesoinception4")
    load_mesonet_keras_weights(model, mesonet_dir / "MesoInception_F2F.h5")
    ref = model.state_dict()
    for key, value in bundled.state_dict().items():
        assert torch.equal(value, ref[key]), key
    assert not list((tmp_path / "empty").glob("*"))  # nothing was fetched


def test_tampered_bundled_copy_is_refused() -> None:
    from fakescope.models import _hub

    cfg = get_detector_cfg("mesoinception4.mesonet_f2f")
    name, sha = cfg.extra["bundled_copy"]
    with pytest.raises(CheckpointError, match="SHA-256"):
        _hub.bundled_file(name, "0" * 64)
    assert _hub.bundled_file(name, sha).is_file()
