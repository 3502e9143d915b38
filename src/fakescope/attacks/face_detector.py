"""Attack on the pipeline's first stage: make BlazeFace miss the face, so ``predict`` reports no face at all.

A deepfake whose face is never found is never scored. The face detector runs on the TensorFlow Lite runtime (no
gradients). Two attacks, both judged by the unchanged pipeline
(:meth:`~fakescope.data.faces.BlazeFaceDetector.detect` returns no face on the attacked 8-bit frame):

- ``"pgd"`` (default, :func:`hide_face_pgd`): white box. The detector's model is rebuilt as a differentiable
  PyTorch module from the ``.tflite`` file (:mod:`fakescope.attacks.blazeface_torch`, checked against the runtime)
  and so is its preprocessing, from frame pixels to every model input it runs (the frame downscaled and
  letterboxed, and the tiles, with OpenCV's resizes as matrices and the contrast stretch). PGD on the face
  scores of every anchor of every input, with the real TFLite pipeline checking the rounded frame as it goes.
- ``"square"`` (:func:`hide_face_square`): black box, ART's Square Attack (Andriushchenko et al., ECCV 2020) with
  the detector's highest raw face score over every model input
  (:meth:`~fakescope.data.faces.BlazeFaceDetector.max_score`) as the loss. The perturbation lives at the
  detector's working resolution over a square around the face and is upsampled (nearest neighbour) to the frame.

Both perturb a square around the face (``margin`` times the box side beyond it) and add the perturbation in
8 bits, so ``||delta||_inf <= eps`` holds in frame pixels.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

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


def _axis_matrix(n_in: int, n_out: int, interpolation: int) -> np.ndarray:
    """``n_out x n_in`` matrix of OpenCV's 1-D resize with ``interpolation`` (resize is separable and linear)."""
    import cv2

    eye = np.eye(n_in, dtype=np.float32)
    return np.ascontiguousarray(cv2.resize(eye, (n_out, n_in), interpolation=interpolation).T)


def _downscale_matrices(w: int, h: int, sw: int, sh: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rows sh x h, cols sw x w)``: :func:`fakescope.data.faces._downscale` as ``small = R @ image @ C.T``."""
    import cv2

    if sw >= w or sh >= h:
        return _axis_matrix(h, sh, cv2.INTER_LINEAR), _axis_matrix(w, sw, cv2.INTER_LINEAR)
    if w > 2 * sw:
        rows = _axis_matrix(2 * sh, sh, cv2.INTER_AREA) @ _axis_matrix(h, 2 * sh, cv2.INTER_LINEAR)
        cols = _axis_matrix(2 * sw, sw, cv2.INTER_AREA) @ _axis_matrix(w, 2 * sw, cv2.INTER_LINEAR)
        return rows, cols
    return _axis_matrix(h, sh, cv2.INTER_AREA), _axis_matrix(w, sw, cv2.INTER_AREA)


def _stretch_params(tile: np.ndarray, max_gain: float = 4.0) -> tuple[float, float] | None:
    """``(lo, gain)`` of :func:`fakescope.data.faces._stretch_contrast` on ``tile`` (None: left unchanged)."""
    cdf = np.cumsum(np.bincount(tile[::2, ::2].ravel(), minlength=256))
    lo, hi = np.searchsorted(cdf, (0.01 * cdf[-1], 0.99 * cdf[-1]))
    span = max(float(hi - lo), 255.0 / max_gain)
    if span >= 254.0:
        return None
    return float(lo), 255.0 / span


def _straight_through(x: torch.Tensor, fn: Any) -> torch.Tensor:
    """``fn(x)`` forward (8-bit rounding), identity gradient backward (BPDA)."""
    return x + (fn(x) - x).detach()


class _DetectorInputs:
    """The model inputs :meth:`~fakescope.data.faces.BlazeFaceDetector.max_score` builds from a frame, in torch.

    The perturbation ``delta`` (``3,rh,rw`` in [0, 1] units) covers the region ``[y1:y2, x1:x2]`` of the frame;
    with ``up = (U_rows, U_cols)`` it lives on a coarser grid and the region gets ``U_rows @ delta @ U_cols.T``.
    Every step of the detector's preprocessing is linear except the contrast stretch and the 8-bit rounding: the
    downscale and the letterbox resize are the matrices of OpenCV's resizes, tiles are crops, and the contrast
    stretch uses the percentiles of the current (rounded) input, held constant for the gradient. The 8-bit
    rounding after each OpenCV step is applied forward and passed as the identity backward.
    """

    def __init__(
        self,
        detector: Any,
        image: np.ndarray,
        region: tuple[int, int, int, int],
        up: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> None:
        import cv2

        from fakescope.data.faces import _downscale, _square_tiles

        h, w = image.shape[:2]
        s_in = detector.input_size
        scale = s_in / min(h, w)
        sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
        self.x1, self.y1, self.x2, self.y2 = region
        rows, cols = _downscale_matrices(w, h, sw, sh)
        rows, cols = rows[:, self.y1 : self.y2], cols[:, self.x1 : self.x2]
        if up is not None:  # delta lives on a coarser grid, upsampled to the region by these matrices
            rows, cols = rows @ up[0], cols @ up[1]
        self.rows = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
        self.cols = torch.from_numpy(np.ascontiguousarray(cols, dtype=np.float32))
        small = _downscale(image, sw, sh)
        self.small = torch.from_numpy(small.astype(np.float32)).permute(2, 0, 1)
        self.s_in = s_in
        self.contrast = detector.contrast
        self.whole = None
        if detector.tiling != "always" or max(sw, sh) <= s_in:
            f = s_in / max(sw, sh)
            lw, lh = max(1, round(sw * f)), max(1, round(sh * f))
            px, py = (s_in - lw) // 2, (s_in - lh) // 2
            clean = cv2.resize(small, (lw, lh), interpolation=cv2.INTER_AREA).astype(np.float32)
            self.whole = (
                torch.from_numpy(clean).permute(2, 0, 1),
                torch.from_numpy(_axis_matrix(sh, lh, cv2.INTER_AREA)),
                torch.from_numpy(_axis_matrix(sw, lw, cv2.INTER_AREA)),
                px,
                py,
            )
        self.tiles = _square_tiles(sw, sh, s_in) if max(sw, sh) > s_in and detector.tiling != "off" else []

    def __call__(self, delta: torch.Tensor) -> torch.Tensor:
        """``N,3,S,S`` model inputs in [-1, 1] (whole frame first, then the tiles) of the frame plus ``delta``."""
        d_small = 255.0 * (self.rows @ delta @ self.cols.T)
        small = _straight_through((self.small + d_small).clamp(0, 255), torch.round)
        inputs = []
        if self.whole is not None:
            clean, rows, cols, px, py = self.whole
            resized = _straight_through((clean + rows @ d_small @ cols.T).clamp(0, 255), torch.round)
            pad = (px, self.s_in - px - resized.shape[2], py, self.s_in - py - resized.shape[1])
            inputs.append(torch.nn.functional.pad(resized, pad))
        for x, y in self.tiles:
            inputs.append(small[:, y : y + self.s_in, x : x + self.s_in])
        out = []
        for t in inputs:
            if self.contrast:
                params = _stretch_params(t.detach().round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy())
                if params is not None:
                    lo, gain = params
                    t = _straight_through(((t - lo) * gain).clamp(0, 255), torch.floor)  # the LUT truncates
            out.append(t * (2.0 / 255.0) - 1.0)
        return torch.stack(out)


def _region(image: np.ndarray, box: Sequence[float], margin: float) -> tuple[int, int, int, int]:
    from fakescope.data.faces import square_box

    h, w = image.shape[:2]
    x1, y1, x2, y2 = square_box(tuple(box), margin)
    return max(0, int(np.floor(x1))), max(0, int(np.floor(y1))), min(w, int(np.ceil(x2))), min(h, int(np.ceil(y2)))


def _apply(image: np.ndarray, region: tuple[int, int, int, int], delta: np.ndarray) -> np.ndarray:
    """The frame with ``delta`` (``3,rh,rw`` in [0, 1] units) added over ``region``, rounded to 8 bits."""
    x1, y1, x2, y2 = region
    out = image.astype(np.float32)
    out[y1:y2, x1:x2] += np.round(delta.transpose(1, 2, 0) * 255.0)
    return np.clip(out, 0, 255).astype(np.uint8)


def blazeface_port(detector: Any, weights_dir: str | Path | None = None) -> Any:
    """The differentiable port (:class:`~fakescope.attacks.blazeface_torch.BlazeFaceTorch`) of ``detector``'s model."""
    from fakescope.attacks.blazeface_torch import BlazeFaceTorch
    from fakescope.data.faces import resolve_blazeface_weights

    return BlazeFaceTorch(resolve_blazeface_weights(detector.variant, weights_dir)).eval()


def hide_face_pgd(
    detector: Any,
    image: np.ndarray,
    box: Sequence[float],
    eps: float = 8 / 255,
    steps: int = 100,
    restarts: int = 2,
    margin: float = 0.5,
    target_score: float = 0.1,
    check_every: int = 10,
    delta_scale: float | None = 1.0,
    port: Any = None,
    seed: int = 0,
) -> tuple[np.ndarray, dict[str, Any]]:
    """White-box PGD through the PyTorch port of BlazeFace so ``detector`` misses the face in ``image``.

    The loss is the sum over every anchor of every model input the detector runs (letterboxed frame and tiles)
    of ``relu(logit - logit(target_score))``: it pushes every candidate box below ``target_score``, below the
    detection threshold with room for the 8-bit rounding (and, with a low target, some compression). Signed
    gradient steps of ``eps / 4`` decay on a cosine schedule; each restart after the first starts from uniform
    noise. Every ``check_every`` steps the rounded frame is scored by the real TFLite pipeline
    (:meth:`~fakescope.data.faces.BlazeFaceDetector.max_score`); the attack stops when that is below
    ``target_score`` and keeps the frame with the lowest real score otherwise.

    Args:
        detector: a :class:`~fakescope.data.faces.BlazeFaceDetector`.
        image: the ``H,W,3`` uint8 RGB frame.
        box: the face box found on the clean frame (pixels).
        eps: L-inf budget in [0, 1] units of the 8-bit frame.
        steps: PGD steps per restart.
        restarts: PGD runs (the first from zero).
        margin: the perturbed square extends ``margin`` times the box side beyond the box.
        target_score: the face score to push every anchor below (the detection threshold is ``min_score``).
        check_every: steps between checks through the real pipeline.
        delta_scale: resolution of the perturbation as a multiple of the detector's working resolution (1.0:
            one value per working pixel, nearest-upsampled to the frame, which survives video compression
            better); None: one value per frame pixel.
        port: a :class:`~fakescope.attacks.blazeface_torch.BlazeFaceTorch` of the detector's model
            (default: built from the cached weights, :func:`blazeface_port`).
        seed: seed of the random starts.

    Returns:
        ``(adversarial frame, info)`` with the clean and adversarial face scores, ``hidden`` (no face found),
        ``linf``, and the steps run.
    """
    port = blazeface_port(detector) if port is None else port
    region = _region(image, box, margin)
    x0, up = _pgd_grid(detector, image, region, delta_scale)
    inputs = _DetectorInputs(detector, image, region, up)

    def full(d: np.ndarray) -> np.ndarray:
        return d if up is None else up[0] @ d @ up[1].T

    def real_score(d: np.ndarray) -> float:
        return detector.max_score(_apply(image, region, full(d)))

    def excess(d: torch.Tensor) -> torch.Tensor:  # per-anchor logits above the target, over every model input
        return torch.relu(port(inputs(d))[1] - t_logit)

    t_logit = float(np.log(target_score / (1 - target_score)))
    gen = torch.Generator().manual_seed(seed)
    best_delta = np.zeros(x0.shape, np.float32)
    best = score_clean = detector.max_score(image)
    n_steps = 0
    for r in range(restarts):
        if best < target_score:
            break
        start = torch.zeros_like(x0) if r == 0 else (torch.rand(x0.shape, generator=gen) * 2 - 1) * eps
        score, d, k = _pgd_restart(excess, real_score, x0, start, eps, steps, check_every, target_score)
        n_steps += k
        if score < best:
            best, best_delta = score, d
        _logger.debug("hide_face_pgd restart %d: best real score %.3f", r, best)
    adv = _apply(image, region, full(best_delta))
    return adv, {**_outcome(detector, image, adv, score_clean), "steps_run": n_steps}


def _outcome(detector: Any, image: np.ndarray, adv: np.ndarray, score_clean: float) -> dict[str, Any]:
    """What a face attack reports: the clean and adversarial face scores, ``hidden`` and the L-inf distance."""
    return {
        "score_clean": score_clean,
        "score_adv": detector.max_score(adv),
        "hidden": len(detector.detect(adv)) == 0,
        "linf": float(np.abs(adv.astype(int) - image.astype(int)).max() / 255.0),
    }


def _pgd_grid(
    detector: Any, image: np.ndarray, region: tuple[int, int, int, int], delta_scale: float | None
) -> tuple[torch.Tensor, tuple[np.ndarray, np.ndarray] | None]:
    """The region as PGD perturbs it (``3,h,w`` in [0, 1]: block means on the working grid, or the frame pixels
    when ``delta_scale`` is None) and the nearest-upsampling matrices back to the frame (None: frame pixels)."""
    import cv2

    x1, y1, x2, y2 = region
    x0 = torch.from_numpy(image[y1:y2, x1:x2].astype(np.float32) / 255.0).permute(2, 0, 1)
    if delta_scale is None:
        return x0, None
    s = detector.input_size / min(image.shape[:2]) * delta_scale
    lh, lw = max(1, round((y2 - y1) * s)), max(1, round((x2 - x1) * s))
    up = (_axis_matrix(lh, y2 - y1, cv2.INTER_NEAREST), _axis_matrix(lw, x2 - x1, cv2.INTER_NEAREST))
    means = up[0].T @ x0.numpy() @ up[1] / np.outer(up[0].sum(0), up[1].sum(0))
    return torch.from_numpy(means.astype(np.float32)), up


def _pgd_restart(
    loss_fn: Any,
    real_score: Any,
    x0: torch.Tensor,
    start: torch.Tensor,
    eps: float,
    steps: int,
    check_every: int,
    target_score: float,
) -> tuple[float, np.ndarray, int]:
    """One PGD run from ``x0 + start``: signed steps of ``eps / 4`` on a cosine decay, the rounded frame scored by
    the real pipeline (``real_score``) every ``check_every`` steps (and when the port says every anchor is below
    target). Returns the best real score, its perturbation and the steps run."""
    delta = ((x0 + start).clamp(0, 1) - x0).requires_grad_(True)
    best, best_delta = float("inf"), np.zeros(x0.shape, np.float32)
    for k in range(steps):
        excess = loss_fn(delta)
        (grad,) = torch.autograd.grad(excess.sum(), delta)
        alpha = eps / 4 * 0.5 * (1 + np.cos(np.pi * k / steps)) + eps / 100
        with torch.no_grad():
            delta -= alpha * grad.sign()
            delta.clamp_(-eps, eps)
            delta.copy_((x0 + delta).clamp(0, 1) - x0)
        if (k + 1) % check_every == 0 or k == steps - 1 or float(excess.detach().max()) <= 0:
            d = delta.detach().numpy().copy()
            score = real_score(d)
            if score < best:
                best, best_delta = score, d
            if best < target_score:
                return best, best_delta, k + 1
    return best, best_delta, steps


def hide_face(
    detector: Any, image: np.ndarray, box: Sequence[float], eps: float = 8 / 255, method: str = "pgd", **kw: Any
) -> tuple[np.ndarray, dict[str, Any]]:
    """Hide the face ``box`` of ``image`` from ``detector`` within ``eps``: white-box PGD or black-box Square.

    Args:
        detector: a :class:`~fakescope.data.faces.BlazeFaceDetector`.
        image: the ``H,W,3`` uint8 RGB frame.
        box: the face box found on the clean frame (pixels).
        eps: L-inf budget in [0, 1] units of the 8-bit frame.
        method: ``"pgd"`` (:func:`hide_face_pgd`, default) or ``"square"`` (:func:`hide_face_square`).
        **kw: passed to the chosen attack.

    Raises:
        ValueError: unknown method.
    """
    if method == "pgd":
        return hide_face_pgd(detector, image, box, eps, **kw)
    if method == "square":
        return hide_face_square(detector, image, box, eps, **kw)
    raise ValueError(f"unknown face attack method {method!r}; choose 'pgd' or 'square'")


def hide_face_square(
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
    return adv, _outcome(detector, image, adv, detector.max_score(image))


def face_attack_videos(
    videos: Sequence[str | Path],
    eps: float = 8 / 255,
    frames_per_video: int = 12,
    queries: int = 300,
    weights_dir: str | Path | None = None,
    crf: int | None = 23,
    seed: int = 0,
    method: str = "pgd",
    steps: int = 100,
    restarts: int = 2,
    **kw: Any,
) -> dict[str, Any]:
    """Hide the main face in evenly spaced frames of each video; report the share of attacked frames hidden.

    Frames where BlazeFace finds no face on the clean frame are skipped (not attacked). With ``crf``, the
    attacked frames are also encoded as H.264 (:func:`fakescope.data.media.write_h264`), decoded and searched
    again: the share still hidden after compression.

    Args:
        videos: the videos.
        eps: L-inf budget in [0, 1] units of the 8-bit frames.
        frames_per_video: evenly spaced frames attacked per video.
        queries: Square Attack iterations (``method="square"``).
        weights_dir: folder holding the BlazeFace model files.
        crf: H.264 quality of the compression check (None: no check).
        seed: base seed (each frame gets its own).
        method: ``"pgd"`` (white box through the PyTorch port, :func:`hide_face_pgd`) or ``"square"``
            (black box, :func:`hide_face_square`).
        steps: PGD steps per restart (``method="pgd"``).
        restarts: PGD restarts (``method="pgd"``).
        **kw: passed to the attack (``margin``, ``target_score``, ...).

    Returns:
        ``{"eps", "method", "n_attacked", "hidden_rate", "hidden_rate_after_h264", "videos": [...],
        "frames": [...]}``.
    """
    from fakescope.data.faces import create_face_detector
    from fakescope.data.media import probe_video

    if method not in ("pgd", "square"):
        raise ValueError(f"unknown face attack method {method!r}; choose 'pgd' or 'square'")
    det = create_face_detector("blazeface", weights_dir=weights_dir)
    if method == "pgd":
        opts = {"steps": steps, "restarts": restarts, "port": blazeface_port(det, weights_dir), **kw}
    else:
        opts = {"queries": queries, **kw}
    rows: list[dict[str, Any]] = []
    per_video = []
    try:
        for v, video in enumerate(videos):
            vrows, adv_frames = _attack_frames(det, video, frames_per_video, eps, method, seed + 1000 * v, opts)
            rows.extend(vrows)
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
        "method": method,
        **({"steps": steps, "restarts": restarts} if method == "pgd" else {"queries": queries}),
        **{k: v for k, v in kw.items() if isinstance(v, int | float | str)},
        "crf": crf,
        "n_attacked": n,
        "hidden_rate": float(np.mean([r["hidden"] for r in rows])) if n else float("nan"),
        "hidden_rate_after_h264": float(after / n) if n and crf is not None else None,
        "videos": per_video,
        "frames": rows,
    }


def _attack_frames(
    det: Any, video: str | Path, n: int, eps: float, method: str, seed: int, opts: dict[str, Any]
) -> tuple[list[dict[str, Any]], list[np.ndarray]]:
    """Attack the first face of ``n`` evenly spaced frames of ``video`` (frames without a face are skipped):
    one report row and one attacked frame per attacked frame; frame ``i`` gets seed ``seed + i``."""
    from fakescope.data.media import sample_frames

    rows, adv_frames = [], []
    for fr in sample_frames(video, num_frames=n):
        faces = det.detect(fr.image)
        if not faces:
            continue
        adv, info = hide_face(det, fr.image, faces[0].box, eps, method, seed=seed + fr.index, **opts)
        rows.append({"video": str(video), "frame": fr.index, **info})
        _logger.info("face attack %s frame %d: %s", Path(video).name, fr.index, info)
        adv_frames.append(adv)
    return rows, adv_frames


def _hidden_after_h264(det: Any, frames: list[np.ndarray], fps: float, crf: int) -> int:
    """Frames of ``frames`` still without a face after an H.264 round trip at ``crf``."""
    import tempfile

    from fakescope.data.media import sample_frames, write_h264

    with tempfile.TemporaryDirectory() as tmp:
        path = write_h264(Path(tmp) / "adv.mp4", frames, fps, crf=crf)
        decoded = sample_frames(path, num_frames=None)
    return sum(len(det.detect(fr.image)) == 0 for fr in decoded)
