"""prepare on Ray: same manifest and crops as the process pool, same failure records, and it resumes."""

from __future__ import annotations

from pathlib import Path

import pytest
import ray

from fakescope.data.prepare import prepare_dataset
from prepare_helpers import manifest_fingerprint, write_video


@pytest.fixture(scope="module")
def ray_session():
    """One quiet local Ray instance with 2 CPUs for the whole module (Ray start-up is slow)."""
    from fakescope.data.prepare import init_ray

    started = init_ray(num_cpus=2)
    yield
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ray_data")
    for i in range(5):
        write_video(root / ("real" if i % 2 == 0 else "fake") / f"v{i}.mp4", shift=2 * i)
    (root / "fake" / "broken.mp4").write_bytes(b"\x00\x01" * 64)
    return root


def _run(root, out, weights, **kw):
    return prepare_dataset("folder", root, out, size=64, num_frames=3, weights_dir=weights, **kw)


def test_ray_matches_process_pool_and_resumes(ray_session, tree, tmp_path, shared_data):
    weights = shared_data / "weights" / "mediapipe"
    pool = _run(tree, tmp_path / "pool", weights, workers=2, executor="process")
    on_ray = _run(tree, tmp_path / "ray", weights, workers=2, executor="ray")
    assert (on_ray.n_processed, on_ray.n_failed) == (5, 1)
    assert manifest_fingerprint(on_ray.manifest_path) == manifest_fingerprint(pool.manifest_path)
    assert Path(on_ray.failures_path).read_text() == Path(pool.failures_path).read_text()
    assert "broken.mp4" in Path(on_ray.failures_path).read_text()
    assert ray.is_initialized()  # prepare leaves a session it did not start alone

    again = _run(tree, tmp_path / "ray", weights, workers=2, executor="ray")
    assert (again.n_processed, again.n_resumed) == (0, 5)
    next((tmp_path / "ray" / "shards").rglob("v3.json")).unlink()
    third = _run(tree, tmp_path / "ray", weights, workers=2, executor="ray")
    assert (third.n_processed, third.n_resumed) == (1, 4)
    assert manifest_fingerprint(third.manifest_path) == manifest_fingerprint(pool.manifest_path)
