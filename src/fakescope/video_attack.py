"""End-to-end video attack: perturb the face crops of a fake video, paste them back, re-encode, predict again.

Steps: decode every frame (:func:`fakescope.data.media.sample_frames`), detect faces
(:mod:`fakescope.data.faces`), cut the same square crops the detector sees, attack them (fake -> real), resize each
perturbation back to its box and add it to the frame, re-encode the video with H.264 at a chosen CRF (PyAV), then
run the whole prediction pipeline (:class:`fakescope.predict.Predictor`: decoding, re-detection, cropping,
aggregation) on the original and on the attacked file. The report puts the crop-level success rate (before and
after pasting into 8-bit frames) next to whether the video-level verdict flips after compression.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fakescope.attacks._base import format_eps
from fakescope.attacks.evaluate import json_safe, predict_proba
from fakescope.data.media import write_h264
from fakescope.errors import MediaError
from fakescope.utils.io import atomic_write_text

_logger = logging.getLogger(__name__)


def _region(box: tuple[float, float, float, float], margin: float) -> tuple[int, int, int]:
    """Integer top-left corner and side of the square crop ``crop_face`` cuts for ``box``."""
    from fakescope.data.faces import square_box

    sx1, sy1, sx2, _ = square_box(box, margin)
    return round(sx1), round(sy1), max(1, round(sx2 - sx1))


def paste_perturbation(frame: np.ndarray, delta: np.ndarray, box: tuple, margin: float) -> np.ndarray:
    """Add a crop-space perturbation ``delta`` (``S,S,3`` float, [0, 1] units) to ``frame`` inside the face square.

    The perturbation is resized (bilinear) to the square's side in frame pixels; parts outside the frame are
    dropped. Returns a new uint8 frame.
    """
    import cv2

    x0, y0, side = _region(box, margin)
    h, w = frame.shape[:2]
    big = cv2.resize(delta.astype(np.float32), (side, side), interpolation=cv2.INTER_LINEAR) * 255.0
    ix1, iy1, ix2, iy2 = max(x0, 0), max(y0, 0), min(x0 + side, w), min(y0 + side, h)
    out = frame.astype(np.float32)
    if ix2 > ix1 and iy2 > iy1:
        out[iy1:iy2, ix1:ix2] += big[iy1 - y0 : iy2 - y0, ix1 - x0 : ix2 - x0]
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def attack_video(
    checkpoint: str | Path | torch.nn.Module,
    video: str | Path,
    out_dir: str | Path,
    eps: float = 8 / 255,
    attack: str = "pgd_linf",
    crf: int = 23,
    detector: str = "blazeface",
    margin: float | None = None,
    max_faces: int = 1,
    num_frames: int = 32,
    seed: int = 0,
    threshold: float | None = None,
    detector_weights_dir: str | Path | None = None,
    crfs: Sequence[int] | None = None,
    max_frames: int | None = None,
    **attack_kwargs: Any,
) -> dict[str, Any]:
    """Attack every detected face of ``video`` and check whether the attack survives H.264 and re-detection.

    The faces are attacked once; with ``crfs`` the attacked frames (and the clean ones, as the reference) are
    encoded at each CRF and predicted again (``report["per_crf"]``); the top-level fields follow the first.

    Args:
        checkpoint: a fakescope checkpoint (or a built Detector).
        video: the (fake) video to attack.
        out_dir: where ``<stem>_adv.mp4`` and ``video_attack.json`` go.
        eps: L-inf budget on the face crop (in [0, 1] units of the crop, which is then resized to the box).
        attack: registered attack (``robust_eot`` is made to survive compression).
        crf: H.264 constant rate factor of the re-encoded video (lower = better quality).
        detector: face detector backend, for the attack and for the prediction pipeline.
        margin: context around the face box; None: the detector's crop contract (``cfg.crop_margin``). The
            attack perturbs axis-aligned crops (no eye levelling) so the perturbation can be pasted back.
        max_faces: faces attacked per frame (highest scores first).
        num_frames: frames the prediction pipeline samples.
        seed: attack seed.
        threshold: decision threshold (default the checkpoint's).
        detector_weights_dir: offline folder with the face detector's model file.
        crfs: several CRFs to encode and predict (default ``[crf]``).
        max_frames: attack only the first N frames (the written videos are that long).
        **attack_kwargs: more attack options (``steps``...).

    Returns:
        The report (also written as ``video_attack.json``).

    Raises:
        MediaError: the video cannot be decoded or has no detectable face.
    """
    from fakescope.attacks._registry import create_attack

    model, meta = _load_target(checkpoint)
    thr = float(threshold if threshold is not None else meta.get("threshold", 0.5))
    if margin is None:
        margin = float(model.cfg.crop_margin)
    video = Path(video)
    frames, fps = _decode(video, max_frames)
    boxes = _face_boxes(video, frames, detector, detector_weights_dir, max_faces)
    atk = create_attack(attack, model, eps=eps, seed=seed, **attack_kwargs)
    images, probs = _attack_faces(model, atk, frames, boxes, margin)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    crf_list = [int(c) for c in (crfs or [crf])]
    options = {"detector": detector, "num_frames": num_frames, "threshold": thr, "margin": margin}
    options["detector_weights_dir"] = detector_weights_dir
    clean = [fr.image for fr in frames]
    res_orig, per_crf = _predict_videos(checkpoint, video, out, (images, clean, fps), crf_list, **options)
    head = {"video": str(video), "model": meta.get("model"), "attack": attack, "eps": eps, "eps_label": format_eps(eps)}
    crop = _crop_report(atk, crf_list[0], thr, detector, len(frames), len(boxes), probs)
    first = {k: per_crf[0][k] for k in ("reencoded_clean", "attacked", "attacked_video", "survives_reencoding")}
    report = {**head, **crop, "original": res_orig, **first, "per_crf": per_crf}
    atomic_write_text(out / "video_attack.json", json.dumps(json_safe(report), indent=2))
    return report


def _decode(video: Path, max_frames: int | None) -> tuple[list, float]:
    """Every frame of ``video`` (the first ``max_frames``) and its frame rate.

    Raises:
        MediaError: no frame could be decoded.
    """
    from fakescope.data.media import probe_video, sample_frames

    fps = probe_video(video).fps
    frames = sample_frames(video, num_frames=None)[:max_frames]
    if not frames:
        raise MediaError(video, "no decodable frames")
    return frames, fps


def _load_target(checkpoint: str | Path | torch.nn.Module) -> tuple[torch.nn.Module, dict[str, Any]]:
    """The detector to attack, in eval mode, and its metadata (a built Detector: threshold 0.5, its arch)."""
    from fakescope.models import load_model

    if isinstance(checkpoint, torch.nn.Module):
        model, meta = checkpoint, {"threshold": 0.5, "model": getattr(checkpoint.cfg, "arch", "detector")}
    else:
        model, meta = load_model(checkpoint)
    model.eval()
    return model, meta


def _predict_videos(
    checkpoint: str | Path | torch.nn.Module,
    video: Path,
    out: Path,
    frames: tuple[list, list, float],
    crfs: list[int],
    **predictor_options: Any,
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Run the prediction pipeline on the original video, then on the clean and attacked frames at each CRF.

    Args:
        checkpoint: the detector, as :func:`attack_video` got it.
        video: the original video.
        out: where the re-encoded videos go.
        frames: ``(attacked frames, clean frames, fps)`` of the videos to write.
        crfs: the CRFs to encode at.
        **predictor_options: :class:`~fakescope.predict.Predictor` options (``threshold`` is required).

    Returns:
        The original's summary and one :func:`_encode_and_predict` row per CRF.
    """
    from fakescope.predict import Predictor

    adv, clean, fps = frames
    thr = predictor_options["threshold"]
    predictor = Predictor(checkpoint, **predictor_options)
    try:
        res_orig = _summary(predictor.analyze(video), thr)
        per_crf = [_encode_and_predict(predictor, out, video.stem, adv, clean, fps, c, thr) for c in crfs]
    finally:
        predictor.close()
    return res_orig, per_crf


def _crop_report(
    atk: Any, crf: int, thr: float, detector: str, n_frames: int, n_crops: int, probs: tuple
) -> dict[str, Any]:
    """The attack's settings and its crop-level success (clean, attacked, and cut again after pasting)."""
    p_clean, p_adv, p_pasted = probs
    caught = p_clean >= thr
    return {
        "attack_params": atk.describe(),
        "crf": crf,
        "threshold": thr,
        "face_detector": detector,
        "n_frames": n_frames,
        "n_crops": n_crops,
        "crop": {
            "clean_fake_recall": float(caught.mean()),
            "success_rate": float(((p_adv < thr) & caught).sum() / max(1, caught.sum())),
            "success_rate_after_paste": float(((p_pasted < thr) & caught).sum() / max(1, caught.sum())),
            "mean_fake_prob_clean": float(p_clean.mean()),
            "mean_fake_prob_adv": float(p_adv.mean()),
            "mean_fake_prob_pasted": float(p_pasted.mean()),
        },
    }


def _face_boxes(
    video: Path, frames: list, detector: str, weights_dir: str | Path | None, max_faces: int
) -> list[tuple[int, tuple]]:
    """``(frame position, box)`` of the faces to attack (highest scores first, ``max_faces`` per frame)."""
    from fakescope.data.faces import create_face_detector

    face_det = create_face_detector(detector, weights_dir=weights_dir)
    try:
        boxes = [
            (k, tuple(float(v) for v in face.box))
            for k, fr in enumerate(frames)
            for face in face_det.detect(fr.image)[:max_faces]
        ]
    finally:
        face_det.close()
    if not boxes:
        raise MediaError(video, f"no face found by {detector!r}; nothing to attack")
    return boxes


def _attack_faces(
    model: torch.nn.Module, atk: Any, frames: list, boxes: list[tuple[int, tuple]], margin: float
) -> tuple[list[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Attack the face crops, paste each perturbation back into its frame; the attacked frames and P(fake) of the
    clean crops, the attacked crops and the crops cut again from the attacked 8-bit frames."""
    from fakescope.data.faces import crop_face

    size = model.cfg.input_size
    crops = np.stack([crop_face(frames[k].image, box, size, margin) for k, box in boxes])
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255.0
    x_adv = torch.cat([atk(x[i : i + 64], torch.ones(len(x[i : i + 64]))) for i in range(0, len(x), 64)])
    delta = (x_adv - x).permute(0, 2, 3, 1).numpy()
    images = [fr.image for fr in frames]
    for (k, box), d in zip(boxes, delta, strict=True):
        images[k] = paste_perturbation(images[k], d, box, margin)
    # the same crops cut from the perturbed 8-bit frames (resize + rounding, before compression)
    pasted = np.stack([crop_face(images[k], box, size, margin) for k, box in boxes])
    p_pasted = predict_proba(model, torch.from_numpy(pasted).permute(0, 3, 1, 2).float() / 255.0)
    return images, (predict_proba(model, x), predict_proba(model, x_adv), p_pasted)


def _summary(r: Any, thr: float) -> dict[str, Any]:
    """Verdict, P(fake), faces and per-frame fake recall of one :class:`~fakescope.predict.Predictor` result."""
    probs = np.array([f.fake_prob for f in r.frames]) if r.frames else np.zeros(0)
    return {
        "path": str(r.path),
        "verdict": r.verdict,
        "fake_prob": r.fake_prob,
        "n_faces": r.n_faces,
        "frame_fake_recall": float((probs >= thr).mean()) if len(probs) else None,
        "error": r.error,
    }


def _encode_and_predict(
    predictor: Any, out: Path, stem: str, adv: list, clean: list, fps: float, crf: int, thr: float
) -> dict[str, Any]:
    """Encode the attacked and the clean frames at ``crf`` and run the prediction pipeline on both."""
    adv_path = write_h264(out / f"{stem}_adv_crf{crf}.mp4", adv, fps, crf=crf)
    clean_path = write_h264(out / f"{stem}_crf{crf}.mp4", clean, fps, crf=crf)
    res_clean, res_adv = _summary(predictor.analyze(clean_path), thr), _summary(predictor.analyze(adv_path), thr)
    return {
        "crf": crf,
        "reencoded_clean": res_clean,
        "attacked": res_adv,
        "attacked_video": str(adv_path),
        "survives_reencoding": bool(res_clean["verdict"] == "fake" and res_adv["verdict"] == "real"),
    }
