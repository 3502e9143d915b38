"""Session fixtures over the built-in demo data (owned by the demo/synth work).

``demo_media`` is the ``labels.csv`` of :func:`fakescope.data.synth.build_demo_media` (real/ and fake/ images and
videos); ``demo_manifest`` is the manifest prepared from it (face crops, group-disjoint splits). Both are built
once per test session in a temporary folder, with seed 0.
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def demo_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``labels.csv`` of the demo media (columns path, label, group_id, source_id, kind, manipulation)."""
    from fakescope.data.synth import build_demo_media

    return build_demo_media(tmp_path_factory.mktemp("demo") / "media", seed=0)


@pytest.fixture(scope="session")
def demo_manifest(demo_media: Path) -> Path:
    """Manifest (Parquet) of the prepared demo data: one row per face crop, split into train/val/test."""
    from fakescope.data.synth import build_demo_manifest

    return build_demo_manifest(demo_media.parent.parent, seed=0, media_csv=demo_media)
