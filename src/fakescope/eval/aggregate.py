"""Frame -> video aggregation, grouped by an explicit ``video_id`` (never by parsing paths).

Scores are first combined per person track (``video_id``, ``track_id``) with the chosen method, then the scores of
the video's *main* tracks are combined into the video's score — by default with ``max``: a video is as fake as its
most fake person (one swapped face among several real ones makes the video fake). A track is main when it holds at
least :data:`MIN_TRACK_SHARE` of the faces of the video's longest track (:func:`main_tracks`); shorter tracks are
spurious detections (a face in a poster, a false positive for a few frames) and do not decide. ``evaluate``,
``predict`` and ``serve`` all use these functions, so a video gets the same score from each.

Methods:

- ``mean``: the mean P(fake).
- ``max``: the highest P(fake) (sensitive to a single bad frame).
- ``confident_mean``: the DFDC winner's rule (Selim Seferbekov, ``confident_strategy`` in
  github.com/selimsef/dfdc_deepfake_challenge, MIT), exactly: with ``n`` scores, if more than ``n // 2.5`` of
  them are confident fakes (``p > 0.8``) *and* more than 11 (an absolute count, as in the original), return the
  mean of those confident fakes; else if more than 90 % are confident reals (``p < 0.2``), return the mean of
  those; else the plain mean. So a track of 11 faces or fewer is never averaged over its confident fakes only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

Method = Literal["mean", "max", "confident_mean"]
METHODS: tuple[str, ...] = ("mean", "max", "confident_mean")


def confident_mean(probs: Sequence[float] | np.ndarray, t: float = 0.8) -> float:
    """The DFDC winner's confident mean of one video's (or track's) P(fake) scores (see the module docstring)."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if p.size == 0:
        raise ValueError("confident_mean of no scores")
    n = p.size
    fakes = int(np.count_nonzero(p > t))
    if fakes > n // 2.5 and fakes > 11:
        return float(p[p > t].mean())
    if np.count_nonzero(p < 1 - t) > 0.9 * n:
        return float(p[p < 1 - t].mean())
    return float(p.mean())


#: A track decides its video's score when it holds at least this share of the longest track's faces.
MIN_TRACK_SHARE = 0.5


def main_tracks(sizes: Sequence[int] | np.ndarray) -> np.ndarray:
    """Which tracks are main (boolean mask): at least :data:`MIN_TRACK_SHARE` of the longest track's faces."""
    n = np.asarray(sizes, dtype=np.float64).reshape(-1)
    return n >= MIN_TRACK_SHARE * n.max() if n.size else np.zeros(0, bool)


def reduce_scores(probs: Sequence[float] | np.ndarray, method: str = "mean") -> float:
    """Combine scores with ``mean``, ``max`` or ``confident_mean``."""
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if method == "mean":
        return float(p.mean())
    if method == "max":
        return float(p.max())
    if method == "confident_mean":
        return confident_mean(p)
    raise ValueError(f"unknown aggregation {method!r}; choose one of {', '.join(METHODS)}")


def aggregate_scores(
    video_ids: Sequence[Any] | np.ndarray | pd.Series,
    probs: Sequence[float] | np.ndarray,
    method: str = "mean",
    *,
    track_ids: Sequence[Any] | np.ndarray | pd.Series | None = None,
    labels: Sequence[int] | np.ndarray | pd.Series | None = None,
    track_reduce: str = "max",
) -> pd.DataFrame:
    """Video-level P(fake) from frame-level scores.

    Args:
        video_ids: the video each score belongs to (explicit ids; rows may come in any order).
        probs: frame (crop) P(fake).
        method: per-track aggregation: ``mean``, ``max`` or ``confident_mean``.
        track_ids: person track of each row (default: one track per video).
        labels: optional frame labels; the video's label is checked to be constant and returned.
        track_reduce: how the main tracks' scores combine into the video's (``max`` by default, or ``mean``).

    Returns:
        One row per video, sorted by ``video_id``: ``video_id``, ``fake_prob``, ``n_frames``, ``n_tracks`` and,
        with ``labels``, ``label``.

    Raises:
        ValueError: lengths differ, an unknown method, or one video has both labels.
    """
    import pandas as pd

    if method not in METHODS:
        raise ValueError(f"unknown aggregation {method!r}; choose one of {', '.join(METHODS)}")
    if track_reduce not in ("max", "mean"):
        raise ValueError(f"unknown track_reduce {track_reduce!r}; choose 'max' or 'mean'")
    vids = np.asarray(video_ids, dtype=object).reshape(-1)
    p = np.asarray(probs, dtype=np.float64).reshape(-1)
    if vids.size != p.size:
        raise ValueError(f"{vids.size} video ids but {p.size} scores")
    tracks = np.zeros(p.size, np.int64) if track_ids is None else np.asarray(track_ids).reshape(-1)
    if tracks.size != p.size:
        raise ValueError(f"{tracks.size} track ids but {p.size} scores")
    df = pd.DataFrame({"video_id": vids.astype(str), "track_id": tracks, "p": p})
    if labels is not None:
        lab = np.asarray(labels).astype(np.int64).reshape(-1)
        if lab.size != p.size:
            raise ValueError(f"{lab.size} labels but {p.size} scores")
        df["label"] = lab
        mixed = df.groupby("video_id")["label"].nunique()
        if (mixed > 1).any():
            raise ValueError(f"videos with both labels: {list(mixed[mixed > 1].index[:5])}")
    if df.empty:
        cols = ["video_id", "fake_prob", "n_frames", "n_tracks"] + (["label"] if labels is not None else [])
        return pd.DataFrame(columns=cols)
    per_track = (
        df.groupby(["video_id", "track_id"], sort=True)["p"]
        .agg(lambda s: reduce_scores(s.to_numpy(), method))
        .rename("p")
        .reset_index()
    )
    per_track["n"] = df.groupby(["video_id", "track_id"], sort=True).size().to_numpy()
    per_track["main"] = per_track.groupby("video_id", sort=True)["n"].transform(lambda n: main_tracks(n.to_numpy()))
    video = per_track[per_track["main"]].groupby("video_id", sort=True)["p"].agg(track_reduce).rename("fake_prob")
    out = pd.DataFrame(
        {
            "video_id": video.index.astype(str),
            "fake_prob": video.to_numpy(np.float64),
            "n_frames": df.groupby("video_id", sort=True).size().reindex(video.index).to_numpy(),
            "n_tracks": per_track.groupby("video_id", sort=True).size().reindex(video.index).to_numpy(),
        }
    )
    if labels is not None:
        out["label"] = df.groupby("video_id", sort=True)["label"].first().reindex(video.index).to_numpy()
    return out.reset_index(drop=True)
