"""Metrics equal scikit-learn's; EER on known curves; video aggregation by explicit video_id; one-class warning."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from fakescope.eval.aggregate import aggregate_scores, confident_mean
from fakescope.eval.metrics import binary_metrics, choose_threshold, eer, one_class_warning


@pytest.fixture(params=[0, 1, 2])
def random_scores(request: pytest.FixtureRequest) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(request.param)
    y = rng.integers(0, 2, 300)
    p = np.clip(rng.normal(0.35 + 0.3 * y, 0.25), 0.0, 1.0)
    return y, p


@pytest.mark.parametrize("threshold", [0.5, 0.37])
def test_binary_metrics_equal_sklearn(random_scores: tuple[np.ndarray, np.ndarray], threshold: float) -> None:
    y, p = random_scores
    y_copy, p_copy = y.copy(), p.copy()
    m = binary_metrics(y, p, threshold=threshold)
    pred = (p >= threshold).astype(int)
    assert m["auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["ap"] == pytest.approx(skm.average_precision_score(y, p))
    assert m["log_loss"] == pytest.approx(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["confusion"] == skm.confusion_matrix(y, pred, labels=[0, 1]).tolist()
    prec, rec, f1, sup = skm.precision_recall_fscore_support(y, pred, labels=[0, 1])
    for i, name in enumerate(("real", "fake")):
        assert m["precision"][name] == pytest.approx(prec[i])
        assert m["recall"][name] == pytest.approx(rec[i])
        assert m["f1"][name] == pytest.approx(f1[i])
        assert m["support"][name] == sup[i]
    assert m["threshold"] == threshold and m["n"] == len(y)
    assert np.array_equal(y, y_copy) and np.array_equal(p, p_copy)  # inputs untouched


def test_eer_known_curves() -> None:
    y = np.array([0] * 50 + [1] * 50)
    assert eer(y, np.r_[np.linspace(0, 0.4, 50), np.linspace(0.6, 1, 50)]) == pytest.approx(0.0)
    rng = np.random.default_rng(0)
    same = rng.random(20000)
    assert eer(np.r_[np.zeros(10000), np.ones(10000)], same) == pytest.approx(0.5, abs=0.02)
    # a constructed case: at threshold 0.7 one of 4 reals is flagged (0.8) and one of 4 fakes missed (0.25)
    # -> FPR = FNR = 0.25
    y3 = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    p3 = np.array([0.1, 0.2, 0.3, 0.8, 0.25, 0.7, 0.85, 0.9])
    assert eer(y3, p3) == pytest.approx(0.25)
    assert np.isnan(eer(np.ones(4), np.linspace(0, 1, 4)))


def test_choose_threshold_separates_and_maximises_balanced_accuracy(
    random_scores: tuple[np.ndarray, np.ndarray],
) -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    for crit in ("youden", "balanced_accuracy"):
        t = choose_threshold(y, p, crit)
        assert 0.3 < t <= 0.7
    y, p = random_scores
    best = max(skm.balanced_accuracy_score(y, p >= t) for t in np.unique(p))
    for crit in ("youden", "balanced_accuracy"):
        t = choose_threshold(y, p, crit)
        assert skm.balanced_accuracy_score(y, p >= t) == pytest.approx(best)
    with pytest.raises(ValueError, match="youden"):
        choose_threshold(y, p, "f1")  # type: ignore[arg-type]


def test_one_class_warning_fires_for_all_fake_not_for_balanced() -> None:
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(20), np.ones(80)]
    all_fake = rng.uniform(0.6, 1.0, 100)
    msg = one_class_warning(all_fake, 0.5)
    assert msg is not None and "'fake'" in msg and "100.0%" in msg
    m = binary_metrics(y, all_fake)
    assert m["accuracy"] == pytest.approx(0.8) and m["balanced_accuracy"] == pytest.approx(0.5)
    assert m["warning"] is not None
    balanced = np.r_[rng.uniform(0, 0.45, 50), rng.uniform(0.55, 1, 50)]
    assert one_class_warning(balanced, 0.5) is None
    assert binary_metrics(np.r_[np.zeros(50), np.ones(50)], balanced)["warning"] is None
    assert "'real'" in (one_class_warning(np.full(40, 0.1), 0.5) or "")


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="0 \\(real\\) and 1"):
        binary_metrics([0, 2], [0.1, 0.2])
    with pytest.raises(ValueError, match="3 values"):
        binary_metrics([0, 1, 1], [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        binary_metrics([0, 1], [0.1, float("nan")])


def test_aggregation_groups_by_video_id_in_any_order() -> None:
    # ids that look alike in paths ("a/clip" vs "b/clip", "clip1" vs "clip10") but differ
    ids = ["a/clip"] * 3 + ["b/clip"] * 2 + ["clip1"] * 2 + ["clip10"] * 2
    probs = [0.1, 0.2, 0.3, 0.9, 0.7, 0.4, 0.6, 0.05, 0.15]
    labels = [0, 0, 0, 1, 1, 1, 1, 0, 0]
    order = np.random.default_rng(0).permutation(len(ids))
    out = aggregate_scores(np.array(ids)[order], np.array(probs)[order], "mean", labels=np.array(labels)[order])
    assert list(out["video_id"]) == ["a/clip", "b/clip", "clip1", "clip10"]
    assert out["fake_prob"].tolist() == pytest.approx([0.2, 0.8, 0.5, 0.1])
    assert out["n_frames"].tolist() == [3, 2, 2, 2] and out["label"].tolist() == [0, 1, 1, 0]
    mx = aggregate_scores(ids, probs, "max")
    assert mx["fake_prob"].tolist() == pytest.approx([0.3, 0.9, 0.6, 0.15])
    with pytest.raises(ValueError, match="both labels"):
        aggregate_scores(["v", "v"], [0.1, 0.9], labels=[0, 1])
    with pytest.raises(ValueError, match="confident_mean"):
        aggregate_scores(ids, probs, "median")


def test_aggregation_per_track_then_video() -> None:
    # one video, two people: a real-looking track and a fake track -> the video is as fake as its fakest person
    ids = ["v"] * 6
    tracks = [0, 0, 0, 1, 1, 1]
    probs = [0.1, 0.1, 0.1, 0.9, 0.8, 0.7]
    out = aggregate_scores(ids, probs, "mean", track_ids=tracks)
    assert out["fake_prob"].item() == pytest.approx(0.8) and out["n_tracks"].item() == 2
    assert aggregate_scores(ids, probs, "mean", track_ids=tracks, track_reduce="mean")["fake_prob"].item() == (
        pytest.approx(0.45)
    )


def test_confident_mean_rule() -> None:
    many_fakes = np.r_[np.full(16, 0.95), np.full(16, 0.3)]  # 16 > 32/2.5 and > 11 confident fakes
    assert confident_mean(many_fakes) == pytest.approx(0.95)
    mostly_real = np.r_[np.full(30, 0.05), np.full(2, 0.5)]  # > 90 % below 0.2
    assert confident_mean(mostly_real) == pytest.approx(0.05)
    mixed = np.r_[np.full(8, 0.9), np.full(24, 0.4)]  # 8 confident fakes: too few -> plain mean
    assert confident_mean(mixed) == pytest.approx(mixed.mean())
    df = aggregate_scores(["x"] * 32, many_fakes, "confident_mean")
    assert isinstance(df, pd.DataFrame) and df["fake_prob"].item() == pytest.approx(0.95)


def _winner_confident_strategy(pred, t=0.8):
    """The DFDC winner's rule, transcribed from its published behaviour (Seferbekov 2020, ``confident_strategy``)."""
    pred = np.array(pred)
    sz = len(pred)
    fakes = np.count_nonzero(pred > t)
    if fakes > sz // 2.5 and fakes > 11:
        return np.mean(pred[pred > t])
    if np.count_nonzero(pred < 0.2) > 0.9 * sz:
        return np.mean(pred[pred < 0.2])
    return np.mean(pred)


def test_confident_mean_is_the_winners_rule_on_every_track_length() -> None:
    rng = np.random.default_rng(0)
    for n in range(1, 65):
        for _ in range(20):
            p = np.where(rng.random(n) < rng.random(), rng.uniform(0.8, 1.0, n), rng.uniform(0.0, 0.5, n))
            assert confident_mean(p) == pytest.approx(_winner_confident_strategy(p)), n
    # pinned: 20 faces with 9 confident fakes is a plain mean (9 > 20 // 2.5 but not > 11); 8 faces likewise
    twenty = np.r_[np.full(9, 0.95), np.full(11, 0.3)]
    assert confident_mean(twenty) == pytest.approx(0.5925)
    eight = np.r_[np.full(6, 0.95), np.full(2, 0.3)]
    assert confident_mean(eight) == pytest.approx(eight.mean())


def test_short_spurious_tracks_do_not_decide_the_video() -> None:
    """evaluate ignores a track with fewer than half the faces of the longest, as predict does."""
    from fakescope.eval.aggregate import main_tracks
    from fakescope.predict import FrameScore, aggregate_tracks

    vids = ["v"] * 12
    tracks = [0] * 10 + [1] * 2
    probs = [0.1] * 10 + [0.99] * 2
    df = aggregate_scores(vids, probs, "mean", track_ids=tracks)
    assert df["fake_prob"].iloc[0] == pytest.approx(0.1)
    frames = [FrameScore(i, 0.0, t, (0, 0, 1, 1), p) for i, (t, p) in enumerate(zip(tracks, probs, strict=True))]
    _, file_prob = aggregate_tracks(frames, "mean")
    assert file_prob == pytest.approx(df["fake_prob"].iloc[0])
    assert main_tracks([10, 5, 4]).tolist() == [True, True, False]
