"""Leak-free train/val/test splits of a manifest.

Rules, in order:

1. **Linked media stay together.** Videos are linked when they share a non-empty ``source_id`` (a fake and the
   real it was made from), ``identity`` (all videos of one person) or ``group_id`` (any other unit, e.g. the
   source-photo group of an image set). Links are transitive: union-find over the three keys gives the
   connected *components*; a component is never cut.
2. **Official lists win.** Rows carrying ``official_split`` (an extra manifest column written by ``prepare``
   from e.g. Celeb-DF's ``List_of_testing_videos.txt``) fix the split of their whole component (``test`` over
   ``val`` over ``train`` when members disagree). Such splits are then excluded from the ratio targets of the
   remaining components (with an official test list, the rest is divided between train and val only).
3. **Stratified as far as components allow.** Components are shuffled with the seed, ordered largest first,
   and each goes to the split with the largest remaining deficit of its labels (counted in videos).
4. **Deterministic.** The same manifest, seed and ratios always give the same split.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import pandas as pd

from fakescope.data.manifest import SPLITS

logger = logging.getLogger(__name__)

LINK_KEYS = ("source_id", "identity", "group_id")
OFFICIAL_SPLIT_COLUMN = "official_split"


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _check_ratios(ratios: Sequence[float]) -> np.ndarray:
    r = np.asarray(list(ratios), dtype=float)
    if r.shape != (3,) or (r < 0).any() or r.sum() <= 0:
        raise ValueError(f"ratios must be three non-negative numbers (train, val, test), got {list(ratios)}")
    return r / r.sum()


def video_components(df: pd.DataFrame, keys: Sequence[str] = LINK_KEYS) -> pd.Series:
    """Component id (0..K-1, in order of first appearance) of every row; linked videos share one.

    Rows are grouped by ``(dataset, video_id)`` first, so all crops of one video always share a component.
    """
    dataset = df["dataset"].astype(str) if "dataset" in df else pd.Series("", index=df.index)
    video_key = dataset + "\x00" + df["video_id"].astype(str)
    video_codes, videos = pd.factorize(video_key)
    uf = _UnionFind(len(videos))
    for key in keys:
        if key not in df:
            continue
        values = df[key].fillna("").astype(str)
        mask = (values != "").to_numpy()
        if not mask.any():
            continue
        # a key value is namespaced by dataset so that "id0" of two datasets does not link them
        scoped = (dataset + "\x00" + values)[mask]
        first: dict[str, int] = {}
        for value, vcode in zip(scoped.to_numpy(), video_codes[mask], strict=True):
            j = first.setdefault(value, int(vcode))
            if j != vcode:
                uf.union(j, int(vcode))
    roots = np.array([uf.find(i) for i in range(len(videos))], dtype=np.int64)
    comp_codes, _ = pd.factorize(roots)
    return pd.Series(comp_codes[video_codes], index=df.index, name="component")


def assign_splits(
    df: pd.DataFrame,
    seed: int = 0,
    ratios: Sequence[float] = (0.7, 0.15, 0.15),
    keys: Sequence[str] = LINK_KEYS,
) -> pd.DataFrame:
    """Return a copy of ``df`` with the ``split`` column (re)assigned without leakage.

    Args:
        df: a manifest (one row per crop, or one row per video: both work).
        seed: shuffles components before the greedy assignment.
        ratios: target fractions of videos for train, val, test.
        keys: columns whose shared non-empty values link videos.

    Returns:
        The manifest with ``split`` set for every row; ``fakescope.data.manifest.find_leaks`` on it is empty
        (unless the official lists themselves disagree within a component; that is logged).
    """
    target = _check_ratios(ratios)
    out = df.copy()
    if out.empty:
        out["split"] = pd.Series([], dtype="string")
        return out
    comp = video_components(out, keys).to_numpy()
    n_comp = int(comp.max()) + 1
    dataset = out["dataset"].astype(str) if "dataset" in out else pd.Series("", index=out.index)
    video_key = (dataset + "\x00" + out["video_id"].astype(str)).to_numpy()
    labels = out["label"].astype(int).to_numpy()

    # videos per component and label
    vids = pd.DataFrame({"comp": comp, "video": video_key, "label": labels}).drop_duplicates(["video"])
    counts = np.zeros((n_comp, 2), dtype=np.int64)
    np.add.at(counts, (vids["comp"].to_numpy(), vids["label"].to_numpy()), 1)

    # official splits fix whole components
    fixed = np.full(n_comp, -1, dtype=np.int64)
    if OFFICIAL_SPLIT_COLUMN in out:
        official = out[OFFICIAL_SPLIT_COLUMN].fillna("").astype(str).to_numpy()
        for s_idx in range(len(SPLITS)):  # later (test) overrides earlier (train)
            hit = np.unique(comp[official == SPLITS[s_idx]])
            fixed[hit] = s_idx
        pulled = (official == "") & (fixed[comp] >= 0)
        if pulled.any():
            logger.info("%d rows without an official split follow linked rows into their official split", pulled.sum())
    used = {int(s) for s in fixed[fixed >= 0]}
    if used:
        target = target.copy()
        target[list(used)] = 0.0
        target = target / target.sum() if target.sum() > 0 else np.array([1.0, 0.0, 0.0])

    free = np.flatnonzero(fixed < 0)
    total = counts[free].sum(axis=0).astype(float)  # videos per label still to place
    want = target[:, None] * total[None, :]  # split x label
    have = np.zeros_like(want)
    rng = np.random.default_rng(seed)
    order = free[rng.permutation(len(free))]
    order = order[np.argsort(-counts[order].sum(axis=1), kind="stable")]
    assigned = fixed.copy()
    for c in order:
        n = counts[c].astype(float)
        # deficit of each split for this component's labels, relative to the split's target
        deficit = ((want - have) * n[None, :]).sum(axis=1) / np.maximum(want.sum(axis=1), 1e-9)
        deficit[target == 0] = -np.inf
        s = int(np.argmax(deficit))
        assigned[c] = s
        have[s] += n
    out["split"] = pd.Series(np.asarray(SPLITS, dtype=object)[assigned[comp]], index=out.index).astype("string")
    return out


def split_summary(df: pd.DataFrame) -> pd.DataFrame:
    """Videos and rows per split and label (a small table for the CLI and logs)."""
    g = df.groupby(["split", "label"], observed=True)
    return pd.DataFrame({"videos": g["video_id"].nunique(), "rows": g.size()}).reset_index()
