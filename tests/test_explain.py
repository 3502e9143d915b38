"""Evidence: Grad-CAM target layers per family, heatmaps, overlay PNGs and the P(fake) timeline."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakescope.explain import gradcam_heatmaps, gradcam_reshape_transform, gradcam_target_layers, plot_timeline
from fakescope.models import create_detector
from fakescope.predict import FrameScore, Predictor


def _face_crop(astronaut: np.ndarray, size: int) -> np.ndarray:
    import cv2

    return cv2.resize(astronaut[10:260, 110:350], (size, size), interpolation=cv2.INTER_AREA)


@pytest.mark.parametrize(
    "name", ["meso4", "mesoinception4", "cnn", "efficientnet_b0", pytest.param("vit_small", marks=pytest.mark.slow)]
)
def test_target_layer_gives_spatial_map(name: str, astronaut: np.ndarray) -> None:
    torch.manual_seed(0)
    model = create_detector(name).eval()
    layers = gradcam_target_layers(model)
    assert len(layers) == 1
    seen = []
    handle = layers[0].register_forward_hook(lambda m, i, o: seen.append(o))
    s = model.cfg.input_size
    with torch.no_grad():
        model(torch.rand(1, 3, s, s))
    handle.remove()
    act = seen[-1]
    reshape = gradcam_reshape_transform(model)
    if name.startswith("vit"):
        assert reshape is not None
        act = reshape(act)
    else:
        assert reshape is None
    assert act.ndim == 4 and act.shape[-1] > 1 and act.shape[-2] > 1  # B,C,h,w with a spatial grid
    heat = gradcam_heatmaps(model, _face_crop(astronaut, s)[None])
    assert heat.shape == (1, s, s)
    assert heat.min() >= 0.0 and heat.max() <= 1.0


def test_heatmaps_of_pretrained_fake_are_not_constant(shared_data: Path) -> None:
    model = create_detector("mesoinception4.mesonet_df", weights_dir=shared_data / "weights" / "mesonet").eval()
    crops = []
    for path in sorted((shared_data / "dev" / "images" / "fake").glob("mesonet_*.jpg")):
        crops.append(np.asarray(Image.open(path).convert("RGB").resize((256, 256))))
    heat = gradcam_heatmaps(model, np.stack(crops))
    assert heat.shape == (len(crops), 256, 256)
    assert all(h.std() > 0.05 for h in heat)  # a map with structure, not a flat field
    assert not model.training  # eval mode restored


def test_predict_explain_writes_overlays_and_timeline(shared_data: Path, tmp_path: Path, astronaut: np.ndarray) -> None:
    image = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(image)
    video = shared_data / "dev" / "videos" / "real" / "ffpp_cyshih_real.mp4"
    out = tmp_path / "evidence"
    with Predictor(
        "mesoinception4.mesonet_df",
        num_frames=4,
        weights_dir=shared_data / "weights" / "mesonet",
        detector_weights_dir=shared_data / "weights" / "mediapipe",
    ) as p:
        r_img = p.analyze(image, explain_dir=out)
        r_vid = p.analyze(video, explain_dir=out)
    assert r_img.verdict in {"fake", "real"} and r_vid.verdict in {"fake", "real"}
    assert len(r_img.evidence["heatmaps"]) == r_img.n_faces
    assert "timeline" not in r_img.evidence
    assert len(r_vid.evidence["heatmaps"]) == r_vid.n_faces
    for png in r_img.evidence["heatmaps"] + r_vid.evidence["heatmaps"]:
        arr = np.asarray(Image.open(png).convert("RGB"))
        assert arr.shape == (256, 512, 3)  # crop | overlay side by side
        assert not np.array_equal(arr[:, :256], arr[:, 256:])  # the overlay changes the crop
        assert Path(png).parent == out / Path(png).parent.name
    timeline = np.asarray(Image.open(r_vid.evidence["timeline"]).convert("RGB"))
    assert timeline.shape[0] > 100 and timeline.std() > 10


def test_cli_explain(shared_data: Path, tmp_path: Path, astronaut: np.ndarray) -> None:
    from typer.testing import CliRunner

    from fakescope.cli.main import app

    image = tmp_path / "face.png"
    Image.fromarray(astronaut).save(image)
    out = tmp_path / "ev"
    res = CliRunner().invoke(
        app,
        [
            "predict", str(image), "--model", "meso4.mesonet_df", "--explain", str(out),
            "--from", str(shared_data / "weights" / "mesonet"),
            "--detector-from", str(shared_data / "weights" / "mediapipe"),
        ],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert len(list((out / "face").glob("*.png"))) >= 1


def test_vit_reshape_transform_drops_prefix_tokens() -> None:
    class FakeVit(torch.nn.Module):
        num_prefix_tokens = 1

        def __init__(self) -> None:
            super().__init__()
            self.blocks = torch.nn.ModuleList([torch.nn.Identity()])
            self.patch_embed = torch.nn.Identity()

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = FakeVit()

    reshape = gradcam_reshape_transform(Wrapped())
    tokens = torch.arange(2 * 17 * 3, dtype=torch.float32).reshape(2, 17, 3)  # class token + 4x4 patches
    grid = reshape(tokens)
    assert grid.shape == (2, 3, 4, 4)
    assert torch.equal(grid[0, :, 0, 0], tokens[0, 1])  # first patch, not the class token
    assert torch.equal(grid[1, :, 3, 3], tokens[1, 16])


def test_timeline_plot(tmp_path: Path) -> None:
    frames = [FrameScore(i, i * 0.5, t, (0, 0, 1, 1), p) for i in range(10) for t, p in ((0, 0.1), (1, 0.8))]
    path = plot_timeline(frames, 0.5, tmp_path / "t.png")
    img = np.asarray(Image.open(path).convert("RGB"))
    assert img.shape == (300, 800, 3)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 10


def test_panel_heatmap_is_the_deciding_members_on_its_view() -> None:
    """Grad-CAM of a panel explains the member whose verdict the panel's logit is, where that member looks."""
    import torch

    from fakescope.explain import gradcam_heatmaps
    from fakescope.models import create_detector
    from fakescope.models.ensemble import PanelDetector

    torch.manual_seed(3)
    dfdc_like = create_detector("mobilenet_v2")
    dfdc_like.set_cfg(dfdc_like.cfg.with_(input_size=160, crop_size=160, crop_margin=0.0))
    panel = PanelDetector([dfdc_like.eval(), create_detector("meso4").eval()], [0.5, 0.999], name="p").eval()
    crops = np.random.default_rng(0).integers(0, 256, (2, 256, 256, 3), dtype=np.uint8)
    x = torch.from_numpy(crops).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        assert (panel.member_logits(x).argmax(0) == 0).all()  # the first member decides
        seen = panel.views[0](x).clamp(0, 1).mul(255).round().byte().permute(0, 2, 3, 1).numpy()
    heat = gradcam_heatmaps(panel, crops)
    own = gradcam_heatmaps(dfdc_like, seen)
    v = panel.views[0]
    inside = heat[:, v.start : v.start + v.side, v.start : v.start + v.side]
    assert heat.shape == (2, 256, 256) and own.max() > 0
    outside = heat.copy()
    outside[:, v.start : v.start + v.side, v.start : v.start + v.side] = 0
    assert not outside.any()
    import cv2

    for h, o in zip(inside, own, strict=True):
        assert np.allclose(h, cv2.resize(o, (v.side, v.side), interpolation=cv2.INTER_LINEAR), atol=1e-6)
