"""Attack on the pipeline's first stage: make BlazeFace miss the face, so ``predict`` reports no face at all.

A deepfake whose face is never found is never scored. The face detector runs on the TensorFlow Lite runtime (no
gradients), so the attack is score-based black box: ART's Square Attack (Andriushchenko et al., ECCV 2020) with
the detector's highest raw face score over every model input it runs (the letterboxed frame and every tile,
:meth:`fakescope.data.faces.BlazeFaceDetector.max_score`) as the loss, stopping once it is below the detection
threshold minus a margin.

The perturbation lives at the detector's working resolution (the frame downscaled so its shorter side is the
model input, 192 px for the full-range model) over a square around the face, and is upsampled (nearest
neighbour) to the frame and added in 8 bits, so ``||delta||_inf <= eps`` holds in frame pixels. Success is
judged by the unchanged pipeline: :meth:`~fakescope.data.faces.BlazeFaceDetector.detect` returns no face.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fakescope.attacks._base import format_eps, seeded

_logger = logging.getLogger(__name__)


class _Region:
    """A square region of the frame around a face, seen at the detector's working scale."""

    def __init__(self, image: np.ndarray, box: Sequence[float], scale: float, margin: float) -> None:
        import cv2

        from fakescope.data.faces import square_box

        h, w = image.shape[:2]
        x1, y1, x2, y2 = square_box(tuple(box), margin)
        self.x1, self.y1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
        self.x2, self.y2 = min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))
        self.image = image
        crop = image[self.y1 : self.y2, self.x1 : self.x2]
        self.small_w = max(4, round((self.x2 - self.x1) * scale))
        self.small_h = max(4, round((self.y2 - self.y1) * scale))
        self.small = cv2.resize(crop, (self.small_w, self.small_h), interpolation=cv2.INTER_AREA) / 255.0

    def apply(self, small_adv: np.ndarray) -> np.ndarray:
        """The frame with ``small_adv - small`` upsampled (nearest) over the region, rounded to 8 bits."""
        import cv2

        delta = (small_adv - self.small).astype(np.float32)
        big = cv2.resize(delta, (self.x2 - self.x1, self.y2 - self.y1), interpolation=cv2.INTER_NEAREST)
        out = self.image.astype(np.float32)
        out[self.y1 : self.y2, self.x1 : self.x2] += np.round(big * 255.0)
        return np.clip(out, 0, 255).astype(np.uint8)


def hide_face(
    detector: Any,
    image: np.ndarray,
    box: Sequence[float],
    eps: float = 8 / 255,
    queries: int = 300,
    p_init: float = 0.3,
    margin: float = 0.5,
    score_margin: float = 0.1,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Perturb ``image`` (``H,W,3`` uint8 RGB) within ``eps`` around the face ``box`` so ``detector`` misses it.

    Args:
        detector: a :class:`~fakescope.data.faces.BlazeFaceDetector` (needs ``max_score`` and ``detect``).
        image: the frame.
        box: the face box found on the clean frame (pixels).
        eps: L-inf budget in [0, 1] units of the 8-bit frame.
        queries: Square Attack iterations (one detector query each).
        p_init: Square Attack's initial share of perturbed elements.
        margin: the perturbed square extends ``margin`` times the box side beyond the box.
        score_margin: the attack stops when the face score is below ``min_score - score_margin``.
        seed: seed of Square Attack's random squares.

    Returns:
        ``(adversarial frame, info)`` with the clean and adversarial face scores and ``hidden`` (no face found).
    """
    from art.attacks.evasion import SquareAttack
    from art.estimators.classification import BlackBoxClassifierNeuralNetwork

    region = _Region(image, box, detector.input_size / min(image.shape[:2]), margin)
    target = detector.min_score - score_margin

    def predict(x: np.ndarray) -> np.ndarray:
        s = np.array([detector.max_score(region.apply(xi)) for xi in x], dtype=np.float32)
        return np.stack([1 - s, s], axis=1)

    clf = BlackBoxClassifierNeuralNetwork(
        predict, region.small.shape, nb_classes=2, clip_values=(0.0, 1.0), channels_first=False
    )
    attack = SquareAttack(
        clf,
        norm=np.inf,
        eps=eps,
        max_iter=queries,
        p_init=p_init,
        nb_restarts=1,
        batch_size=1,
        verbose=False,
        loss=lambda x, y: clf.predict(x)[:, 1] - target,
        adv_criterion=lambda y_pred, y: y_pred[:, 1] < target,
    )
    x = region.small[None].astype(np.float32)
    with seeded(seed):
        x_adv = attack.generate(x, y=np.array([[0.0, 1.0]], dtype=np.float32))[0]
    x_adv = np.clip(x_adv, region.small - eps, region.small + eps)
    adv = region.apply(x_adv)
    info = {
        "score_clean": detector.max_score(image),
        "score_adv": detector.max_score(adv),
        "hidden": len(detector.detect(adv)) == 0,
        "linf": float(np.abs(adv.astype(int) - image.astype(int)).max() / 255.0),
    }
    return adv, info


def face_attack_videos(
    videos: Sequence[str | Path],
    eps: float = 8 / 255,
    frames_per_video: int = 12,
    queries: int = 300,
    weights_dir: str | Path | None = None,
    crf: int | None = 23,
    seed: int = 0,
) -> dict[str, Any]:
    """Hide the main face in evenly spaced frames of each video; report the share of attacked frames hidden.

    Frames where BlazeFace finds no face on the clean frame are skipped (not attacked). With ``crf``, the
    attacked frames are also encoded as H.264 (:func:`fakescope.data.media.write_h264`), decoded and searched
    again: the share still hidden after compression.

    Returns:
        ``{"eps", "n_attacked", "hidden_rate", "hidden_rate_after_h264", "videos": [...], "frames": [...]}``.
    """
    from fakescope.data.faces import create_face_detector
    from fakescope.data.media import probe_video, sample_frames

    det = create_face_detector("blazeface", weights_dir=weights_dir)
    rows: list[dict[str, Any]] = []
    per_video = []
    try:
        for v, video in enumerate(videos):
            frames = sample_frames(video, num_frames=frames_per_video)
            adv_frames = []
            for fr in frames:
                faces = det.detect(fr.image)
                if not faces:
                    continue
                adv, info = hide_face(det, fr.image, faces[0].box, eps, queries, seed=seed + 1000 * v + fr.index)
                rows.append({"video": str(video), "frame": fr.index, **info})
                adv_frames.append(adv)
            vrows = [r for r in rows if r["video"] == str(video)]
            entry = {"video": str(video), "n_attacked": len(vrows), "hidden": sum(r["hidden"] for r in vrows)}
            if crf is not None and adv_frames:
                entry["hidden_after_h264"] = _hidden_after_h264(det, adv_frames, probe_video(video).fps, crf)
            per_video.append(entry)
            _logger.info("face attack %s: %s", video, entry)
    finally:
        det.close()
    n = len(rows)
    after = sum(e.get("hidden_after_h264", 0) for e in per_video)
    return {
        "eps": float(eps),
        "eps_label": format_eps(eps),
        "queries": queries,
        "crf": crf,
        "n_attacked": n,
        "hidden_rate": float(np.mean([r["hidden"] for r in rows])) if n else float("nan"),
        "hidden_rate_after_h264": float(after / n) if n and crf is not None else None,
        "videos": per_video,
        "frames": rows,
    }


def _hidden_after_h264(det: Any, frames: list[np.ndarray], fps: float, crf: int) -> int:
    """Frames of ``frames`` still without a face after an H.264 round trip at ``crf``."""
    import tempfile

    from fakescope.data.media import sample_frames, write_h264

    with tempfile.TemporaryDirectory() as tmp:
        path = write_h264(Path(tmp) / "adv.mp4", frames, fps, crf=crf)
        decoded = sample_frames(path, num_frames=None)
    return sum(len(det.detect(fr.image)) == 0 for fr in decoded)
