"""Baselines shared by the benchmark scripts (imported by them as a sibling module; not part of the package)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def decode_only(path: Path, num_frames: int = 32) -> float:
    """Seconds to decode every frame of a video with PyAV (frame threads) and convert ``num_frames`` evenly
    spaced ones to RGB: the floor any video analysis pays."""
    import av

    from fakescope.data.media import probe_video

    n = probe_video(path).num_frames  # counted by demuxing when the container does not say
    keep = set(np.linspace(0, max(n - 1, 0), num_frames).round().astype(int).tolist())
    t = time.perf_counter()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        for i, frame in enumerate(container.decode(stream)):
            if i in keep:
                frame.to_ndarray(format="rgb24")
    return time.perf_counter() - t
