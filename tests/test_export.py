"""ONNX export: parity with PyTorch, dynamic batch, metadata, ``--runtime onnx`` and the ``export`` command."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from fakescope.errors import CheckpointError
from fakescope.export import PARITY_TOL, OnnxDetector, ParityReport, export_onnx
from fakescope.models import create_detector, save_checkpoint
from fakescope.predict import Predictor


def _torch_logits(model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
    model.eval()
    with torch.no_grad():
        return model(x).numpy()


@pytest.mark.parametrize("name", ["meso4", "efficientnet_b0"])
def test_parity_and_dynamic_batch(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_detector(name)
    out = tmp_path / f"{name}.onnx"
    report = export_onnx(model, out, metadata={"threshold": 0.42}, n_check=4)
    assert report is not None and report.ok, report
    assert report.max_abs_diff_logit <= PARITY_TOL
    onnx_model = OnnxDetector(out)
    assert onnx_model.input_size == model.cfg.input_size
    assert onnx_model.meta["model"] == name and onnx_model.meta["threshold"] == 0.42
    assert onnx_model.meta["cfg"]["input_size"] == model.cfg.input_size
    g = torch.Generator().manual_seed(1)
    for batch in (1, 3):
        x = torch.rand(batch, 3, model.cfg.input_size, model.cfg.input_size, generator=g)
        got = onnx_model(x)
        assert isinstance(got, torch.Tensor) and got.shape == (batch,)
        np.testing.assert_allclose(got.numpy(), _torch_logits(model, x), atol=PARITY_TOL, rtol=0)
        np.testing.assert_allclose(
            onnx_model.predict_proba(x.numpy()),
            torch.sigmoid(torch.from_numpy(_torch_logits(model, x))).numpy(),
            atol=PARITY_TOL,
        )


def test_parity_report_fails_beyond_tolerance() -> None:
    assert not ParityReport(2e-4, 1e-5, 8, 1e-4).ok
    assert ParityReport(5e-5, 1e-5, 8, 1e-4).ok


def test_onnx_detector_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        OnnxDetector(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_text("not a model")
    with pytest.raises(CheckpointError, match="not a loadable ONNX model"):
        OnnxDetector(junk)


def test_onnx_runtime_predict_equals_torch(shared_data: Path, tmp_path: Path, astronaut: np.ndarray) -> None:
    image = tmp_path / "astronaut.png"
    Image.fromarray(astronaut).save(image)
    video = shared_data / "dev" / "videos" / "fake" / "ffpp_cyshih_fake.mp4"
    common = {
        "num_frames": 4,
        "weights_dir": shared_data / "weights" / "mesonet",
        "detector_weights_dir": shared_data / "weights" / "mediapipe",
    }
    with (
        Predictor("meso4.mesonet_df", runtime="torch", **common) as pt,
        Predictor("meso4.mesonet_df", runtime="onnx", **common) as ort,
    ):
        for path in (image, video):
            a, b = pt.analyze(path), ort.analyze(path)
            assert a.verdict in {"fake", "real"} and b.runtime == "onnx"
            assert a.verdict == b.verdict
            assert abs(a.fake_prob - b.fake_prob) <= 1e-4
            assert len(a.frames) == len(b.frames) > 0
            for fa, fb in zip(a.frames, b.frames, strict=True):
                assert (fa.frame_index, fa.track_id) == (fb.frame_index, fb.track_id)
                assert abs(fa.fake_prob - fb.fake_prob) <= 1e-4


def test_checkpoint_export_keeps_threshold(tmp_path: Path) -> None:
    torch.manual_seed(0)
    ckpt = save_checkpoint(create_detector("meso4"), tmp_path / "m.safetensors", threshold=0.37)
    out = tmp_path / "m.onnx"
    res = _run_cli(["export", str(ckpt), "--format", "onnx", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "parity" in res.output and "OK" in res.output
    with Predictor(out, detector="haar") as p:
        assert p.threshold == pytest.approx(0.37)
        assert p.runtime == "onnx" and p.model_name == "meso4"
        assert p.loaded.input_size == 256


def test_cli_export_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    res = _run_cli(["export", "nosuchnet", "--out", str(tmp_path / "x.onnx")])
    assert res.exit_code == 2 and "nosuchnet" in res.output
    import fakescope.export as export_mod

    monkeypatch.setattr(export_mod, "check_parity", lambda *a, **k: ParityReport(3e-3, 1e-3, 8, k.get("tol", 1e-4)))
    res = _run_cli(["export", "meso4", "--out", str(tmp_path / "y.onnx")])
    assert res.exit_code == 1
    assert "FAILED" in res.output


def _run_cli(args: list[str]):
    from typer.testing import CliRunner

    from fakescope.cli.main import app

    return CliRunner().invoke(app, args, env={"COLUMNS": "200"})
