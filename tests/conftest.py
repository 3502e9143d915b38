"""Shared fixtures. Tests that need ../shared/data skip cleanly when it is absent (a fresh clone elsewhere)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]

pytest_plugins = ["fixtures_demo", "fixtures_models"]


def _shared_data() -> Path | None:
    env = os.environ.get("FAKESCOPE_SHARED_DATA")
    for cand in ([Path(env)] if env else []) + [REPO.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$FAKESCOPE_SHARED_DATA``); skips the test when absent.

    With ``FAKESCOPE_REQUIRE_SHARED=1`` (set by CI, where the data is always there) a missing folder fails the
    test instead, so CI cannot pass by skipping.
    """
    path = _shared_data()
    if path is None:
        if os.environ.get("FAKESCOPE_REQUIRE_SHARED") == "1":
            pytest.fail("../shared/data is missing but FAKESCOPE_REQUIRE_SHARED=1")
        pytest.skip("../shared/data is not present")
    return path


@pytest.fixture(scope="session")
def dev_videos(shared_data: Path) -> list[Path]:
    """The four labelled dev videos."""
    return sorted((shared_data / "dev" / "videos").rglob("*.mp4"))


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    """scikit-image's astronaut photo, RGB uint8 512x512 (one clear face)."""
    from skimage import data

    return data.astronaut()


@pytest.fixture
def astronaut_png(tmp_path: Path, astronaut: np.ndarray) -> Path:
    """The astronaut photo saved as a PNG in the test's temporary folder."""
    from PIL import Image

    path = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(path)
    return path


@pytest.fixture(scope="session")
def mediapipe_dir(shared_data: Path) -> Path:
    """The BlazeFace model files (``../shared/data/weights/mediapipe``)."""
    return shared_data / "weights" / "mediapipe"


@pytest.fixture(scope="session")
def blazeface_detector(mediapipe_dir: Path):
    """A session-wide BlazeFace face detector."""
    from fakescope.data.faces import create_face_detector

    det = create_face_detector("blazeface", weights_dir=mediapipe_dir)
    yield det
    det.close()
