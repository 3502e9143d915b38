"""Evidence for a verdict: Grad-CAM heatmaps per face and a P(fake) timeline per video.

Grad-CAM (Selvaraju et al., ICCV 2017) comes from the maintained ``grad-cam`` package
(``pytorch_grad_cam``). The target is the detector's fake logit, so warm regions are those that pushed the
score towards *fake*. The target layer is the last spatial feature map of the backbone, picked per family by
:func:`gradcam_target_layers`; vision transformers get a token-to-grid ``reshape_transform``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fakescope.utils.io import atomic_path, save_png


class FakeLogitTarget:
    """Grad-CAM target: the detector's single output (the fake logit) for one image."""

    def __call__(self, model_output: Any) -> Any:
        return model_output.reshape(-1)[0] if model_output.ndim else model_output


def _backbone(model: Any) -> Any:
    return getattr(model, "backbone", model)


def _is_vit(module: Any) -> bool:
    return hasattr(module, "blocks") and hasattr(module, "patch_embed") and hasattr(module, "num_prefix_tokens")


def gradcam_target_layers(model: Any) -> list[Any]:
    """The layer whose activations Grad-CAM weighs, for any fakescope detector.

    - an explicit ``model.gradcam_layers`` list wins;
    - timm vision transformers: ``blocks[-1].norm1`` (use with :func:`gradcam_reshape_transform`);
    - other timm models: the module of the deepest entry in ``feature_info`` (the last stage);
    - anything else (MesoNet, the small CNN): the last ``BatchNorm2d`` or ``Conv2d`` of the backbone (a norm
      layer that follows the last conv is preferred, because in-place activations may modify a conv's output).

    Raises:
        ValueError: the model has no convolution or transformer block to explain.
    """
    from torch import nn

    explicit = getattr(model, "gradcam_layers", None)
    if explicit:
        return list(explicit)
    bb = _backbone(model)
    if _is_vit(bb):
        return [bb.blocks[-1].norm1]
    info = getattr(bb, "feature_info", None)
    if info is not None:
        entries = info.get_dicts() if hasattr(info, "get_dicts") else list(info)
        if entries and entries[-1].get("module"):
            try:
                return [bb.get_submodule(entries[-1]["module"])]
            except AttributeError:
                pass
    last = None
    for m in bb.modules():
        if isinstance(m, nn.Conv2d | nn.BatchNorm2d):
            last = m
    if last is None:
        raise ValueError(f"{type(model).__name__}: no Conv2d/BatchNorm2d layer or transformer block to explain")
    return [last]


def gradcam_reshape_transform(model: Any) -> Callable[[Any], Any] | None:
    """For vision transformers, map tokens ``B,N,C`` to a grid ``B,C,h,w`` (prefix tokens dropped); else None."""
    bb = _backbone(model)
    if not _is_vit(bb):
        return None
    n_prefix = int(bb.num_prefix_tokens)

    def reshape(tokens: Any) -> Any:
        t = tokens[:, n_prefix:, :]
        side = round(t.shape[1] ** 0.5)
        return t.reshape(t.shape[0], side, side, t.shape[2]).permute(0, 3, 1, 2)

    return reshape


def gradcam_heatmaps(model: Any, crops: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Grad-CAM heatmaps of the fake logit for face crops.

    Args:
        model: a torch detector (``[0,1]`` images ``B,3,S,S`` -> logits ``B``).
        crops: ``N,S,S,3`` uint8 RGB at the model's input size.
        batch_size: crops per Grad-CAM pass.

    Returns:
        ``N,S,S`` float32 heatmaps in [0, 1] (each normalised to its own range by Grad-CAM; all zeros when no
        region supports *fake*).
    """
    import torch
    from pytorch_grad_cam import GradCAM

    if len(crops) == 0:
        return np.zeros((0, *crops.shape[1:3]), dtype=np.float32)
    if hasattr(model, "member_logits") and hasattr(model, "views"):
        return _panel_heatmaps(model, crops, batch_size)
    from fakescope.models.inference import eval_mode

    out = []
    try:
        with (
            eval_mode(model),
            GradCAM(
                model=model,
                target_layers=gradcam_target_layers(model),
                reshape_transform=gradcam_reshape_transform(model),
            ) as cam,
        ):
            for i in range(0, len(crops), batch_size):
                x = torch.from_numpy(np.ascontiguousarray(crops[i : i + batch_size])).permute(0, 3, 1, 2).float() / 255
                heat = cam(input_tensor=x, targets=[FakeLogitTarget()] * len(x))
                out.append(np.asarray(heat, dtype=np.float32))
    finally:
        model.zero_grad(set_to_none=True)
    return np.concatenate(out)


def _panel_heatmaps(panel: Any, crops: np.ndarray, batch_size: int) -> np.ndarray:
    """Grad-CAM of a :class:`~fakescope.models.ensemble.PanelDetector`: per crop, the heatmap of the member whose
    verdict the panel's logit is (the most confident one above its threshold), computed on that member's view
    and placed where the view lies in the crop (zero outside it)."""
    import cv2
    import torch

    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        winners = panel.member_logits(x).argmax(0).numpy()
    out = np.zeros(crops.shape[:3], dtype=np.float32)
    for k in np.unique(winners):
        rows = np.flatnonzero(winners == k)
        view = panel.views[int(k)]
        with torch.no_grad():
            seen = view(x[rows]).clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).numpy()
        heat = gradcam_heatmaps(panel.members[int(k)], seen, batch_size)
        box = slice(view.start, view.start + view.side)
        for i, h in zip(rows, heat, strict=True):
            out[i, box, box] = cv2.resize(h, (view.side, view.side), interpolation=cv2.INTER_LINEAR)
    return out


def overlay(crop: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5) -> np.ndarray:
    """Blend a heatmap (``H,W`` in [0, 1], JET colours) over an RGB uint8 crop; returns RGB uint8."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    img = crop.astype(np.float32) / 255.0
    return show_cam_on_image(img, heatmap.astype(np.float32), use_rgb=True, image_weight=1.0 - alpha)


def save_overlay(crop: np.ndarray, heatmap: np.ndarray, path: str | Path) -> Path:
    """Write the crop and its heatmap overlay side by side as a PNG (atomically)."""
    from PIL import Image

    path = Path(path)
    side = np.concatenate([crop, overlay(crop, heatmap)], axis=1)
    with atomic_path(path) as tmp:
        Image.fromarray(side).save(tmp, format="PNG")
    return path


def plot_timeline(frames: Sequence[Any], threshold: float, path: str | Path, title: str = "P(fake) over time") -> Path:
    """Plot P(fake) per face over time, one line per person track, with the decision threshold.

    Args:
        frames: :class:`fakescope.predict.FrameScore` rows (``timestamp``, ``track_id``, ``fake_prob``).
        threshold: drawn as a dashed line.
        path: PNG to write (atomically).
        title: plot title.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 3), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    tracks = sorted({f.track_id for f in frames})
    for tid in tracks:
        pts = sorted((f.timestamp, f.fake_prob) for f in frames if f.track_id == tid)
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", markersize=3, label=f"person {tid}")
    ax.axhline(threshold, color="grey", linestyle="--", linewidth=1, label=f"threshold {threshold:.2f}")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("P(fake)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", fontsize=7)
    return save_png(fig, path)
