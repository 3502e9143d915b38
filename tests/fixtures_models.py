"""Session fixtures with trained demo models (owned by the training work).

``demo_checkpoint`` trains ``meso4`` once per test session on the demo manifest (``demo_manifest`` from
``fixtures_demo.py``) with the ``configs/demo/meso4.yaml`` recipe and returns ``(checkpoint_path,
manifest_path)``; ``demo_run`` returns the whole :class:`fakescope.train.TrainResult`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DEMO_CONFIG = REPO / "configs" / "demo" / "meso4.yaml"


@pytest.fixture(scope="session")
def demo_run(demo_manifest: Path, tmp_path_factory: pytest.TempPathFactory):
    """A meso4 trained on the demo manifest (``TrainResult``; the run directory lives in a session temp dir)."""
    from fakescope.train import fit, load_train_config

    cfg = load_train_config(DEMO_CONFIG, device="cpu", num_workers=0)
    return fit(cfg, demo_manifest, tmp_path_factory.mktemp("demo_run") / "meso4")


@pytest.fixture(scope="session")
def demo_checkpoint(demo_run, demo_manifest: Path) -> tuple[Path, Path]:
    """``(best checkpoint path, manifest path)`` of the session's demo meso4."""
    return demo_run.best_checkpoint, demo_manifest
