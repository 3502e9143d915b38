"""``Predictor`` and ``fakescope predict`` on a fresh clone: a seeded random meso4 and OpenCV's Haar detector.

Nothing here needs ``../shared`` or a download. Every score is checked against a reference computed without
fakescope's code path: the crop cut with NumPy/OpenCV from the frame decoded by PyAV or Pillow, the logit from the
model's own ``forward``, the file score from a pandas group-by.
"""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import av
import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from fakescope.data.media import write_h264
from fakescope.models import create_detector, load_checkpoint, save_checkpoint
from fakescope.predict import Predictor

THRESHOLD = 0.45


@pytest.fixture(scope="module")
def random_meso4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    model = create_detector("meso4")
    return save_checkpoint(model, tmp_path_factory.mktemp("m") / "meso4.safetensors", threshold=THRESHOLD)


@pytest.fixture(scope="module")
def predictor(random_meso4: Path) -> Predictor:
    with Predictor(random_meso4, detector="haar", num_frames=4) as p:
        yield p


def _reference_crop(model, image: np.ndarray, box: tuple[float, ...]) -> np.ndarray:
    """The model input for one face: the square of side max(w, h) * (1 + margin) around the box centre (black
    beyond the frame), resized with OpenCV's area averaging to the model input."""
    cfg = model.cfg
    x1, y1, x2, y2 = box
    side = max(x2 - x1, y2 - y1) * (1 + cfg.crop_margin)
    x0, y0, s = round((x1 + x2 - side) / 2), round((y1 + y2 - side) / 2), max(1, round(side))
    padded = np.pad(image, ((s, s), (s, s), (0, 0)))
    square = padded[y0 + s : y0 + 2 * s, x0 + s : x0 + 2 * s]
    size = cfg.crop_size or cfg.input_size
    crop = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA if s > size else cv2.INTER_LINEAR)
    if size != cfg.input_size:
        crop = cv2.resize(crop, (cfg.input_size,) * 2, interpolation=cv2.INTER_AREA)
    return crop


def _reference_prob(model, image: np.ndarray, box: tuple[float, ...]) -> float:
    """P(fake) of one face: :func:`_reference_crop` through the model's forward."""
    x = torch.from_numpy(_reference_crop(model, image, box)).permute(2, 0, 1)[None].float() / 255
    with torch.no_grad():
        return float(torch.sigmoid(model(x)).item())


def test_image_face_score_equals_the_reference(predictor: Predictor, random_meso4: Path, astronaut_png: Path) -> None:
    r = predictor.analyze(astronaut_png)
    assert r.verdict in {"fake", "real"} and r.kind == "image" and r.n_faces >= 1, r.error
    image = np.asarray(Image.open(astronaut_png).convert("RGB"))
    model = load_checkpoint(random_meso4)[0].eval()
    for fs in r.frames:
        assert fs.fake_prob == pytest.approx(_reference_prob(model, image, fs.box), abs=1e-5)
    main = max(r.tracks, key=lambda t: t.n_faces)
    assert r.threshold == pytest.approx(THRESHOLD)  # the checkpoint's threshold
    assert r.verdict == ("fake" if r.fake_prob >= THRESHOLD else "real")
    assert r.fake_prob == pytest.approx(np.mean([f.fake_prob for f in r.frames if f.track_id == main.track_id]))


@pytest.fixture(scope="module")
def moving_clip(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray) -> Path:
    """Two seconds at 10 fps: the astronaut photo pans slowly across a 320x240 frame (one face)."""
    frames = []
    for i in range(20):
        m = np.float32([[0.5, 0, -40 + 2 * i], [0, 0.5, -10], [0, 0, 1]])[:2]
        frames.append(cv2.warpAffine(astronaut, m, (320, 240), borderMode=cv2.BORDER_REPLICATE))
    return write_h264(tmp_path_factory.mktemp("clip") / "pan.mp4", frames, 10, crf=18, preset="veryfast")


def test_video_scores_equal_the_reference(predictor: Predictor, random_meso4: Path, moving_clip: Path) -> None:
    r = predictor.analyze(moving_clip)
    assert r.kind == "video" and r.verdict in {"fake", "real"}, r.error
    with av.open(str(moving_clip)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    wanted = sorted({f.frame_index for f in r.frames})
    assert len(wanted) == 4 and wanted[0] == 0 and wanted[-1] <= len(decoded) - 1
    model = load_checkpoint(random_meso4)[0].eval()
    for fs in r.frames:
        assert fs.fake_prob == pytest.approx(_reference_prob(model, decoded[fs.frame_index], fs.box), abs=1e-5)
        assert fs.timestamp == pytest.approx(fs.frame_index / 10, abs=1e-3)
    # file score: per-track mean (pandas), then the highest of the tracks that are used
    df = pd.DataFrame([{"track": f.track_id, "p": f.fake_prob} for f in r.frames])
    per_track = df.groupby("track")["p"].mean()
    used = [t.track_id for t in r.tracks if t.used]
    assert r.fake_prob == pytest.approx(per_track[used].max())


def _run_cli(args: list[str]):
    from typer.testing import CliRunner

    from fakescope.cli.main import app

    return CliRunner().invoke(app, args, env={"COLUMNS": "200"})


def _bad_inputs(folder: Path) -> dict[str, str]:
    """Bad files written into ``folder``: name -> a word the error must contain."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "notes.jpg").write_text("plain text, not a picture\n" * 20)
    png = folder / "half.png"
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(png)
    png.write_bytes(png.read_bytes()[:60])
    return {"empty.mp4": "empty", "notes.jpg": "not an image", "half.png": "truncated"}


def test_cli_batch_reports_bad_files_and_keeps_the_rest(
    random_meso4: Path, astronaut_png: Path, tmp_path: Path
) -> None:
    bad = _bad_inputs(tmp_path / "bad")
    out_csv = tmp_path / "out.csv"
    args = ["predict", str(astronaut_png), str(tmp_path / "bad"), "--model", str(random_meso4), "--detector", "haar"]
    res = _run_cli([*args, "--json", "--csv", str(out_csv)])
    assert res.exit_code == 1, res.output  # some files failed, the rest finished
    rows = json.loads(res.stdout)
    by_name = {Path(r["path"]).name: r for r in rows}
    assert set(by_name) == {"astronaut.png", *bad}
    assert by_name["astronaut.png"]["verdict"] in {"fake", "real"}
    for name, word in bad.items():
        row = by_name[name]
        assert row["verdict"] == "error" and word in row["error"].lower(), row
    with open(out_csv, newline="") as f:
        table = list(csv.DictReader(f))
    assert [r["path"] for r in table] == [r["path"] for r in rows]
    good = next(r for r in table if r["verdict"] != "error")
    assert math.isclose(float(good["fake_prob"]), by_name["astronaut.png"]["fake_prob"], abs_tol=1e-4)


def test_cli_exit_zero_no_face_and_usage_errors(random_meso4: Path, astronaut_png: Path, tmp_path: Path) -> None:
    blank = tmp_path / "blank.jpg"
    Image.fromarray(np.full((100, 120, 3), 90, np.uint8)).save(blank)
    common = ["--model", str(random_meso4), "--detector", "haar"]
    res = _run_cli(["predict", str(astronaut_png), str(blank), *common, "--json"])
    assert res.exit_code == 0, res.output
    verdicts = {Path(r["path"]).name: r["verdict"] for r in json.loads(res.stdout)}
    assert verdicts["blank.jpg"] == "no-face" and verdicts["astronaut.png"] in {"fake", "real"}
    res = _run_cli(["predict", str(astronaut_png), "--model", str(tmp_path / "nope.safetensors")])
    assert res.exit_code == 2 and "nope.safetensors" in res.output
    (tmp_path / "empty").mkdir()
    res = _run_cli(["predict", str(tmp_path / "empty"), *common])
    assert res.exit_code == 2 and "no image or video" in res.output


def test_adversarial_suspicion_is_the_squeezing_score_of_the_crops(
    random_meso4: Path, astronaut_png: Path, tmp_path: Path
) -> None:
    """``adv_suspicion`` is the fitted detector's score of the file's crops (highest face); ``adv_flag`` its test."""
    import json as json_

    from fakescope.defenses import FeatureSqueezing

    model = load_checkpoint(random_meso4)[0].eval()
    clean = torch.from_numpy(np.random.default_rng(0).random((6, 3, 256, 256), dtype=np.float32))
    fs = FeatureSqueezing(model).fit(clean)
    path = fs.save(tmp_path / "adv.json")
    with Predictor(random_meso4, detector="haar", adv_detector=path) as pred:
        r = pred.analyze(astronaut_png)
    image = np.asarray(Image.open(astronaut_png).convert("RGB"))
    crops = [_reference_crop(model, image, f.box) for f in r.frames]
    expected = float(fs.score(torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255).max())
    assert r.adv_suspicion == pytest.approx(expected, abs=1e-5)
    assert r.adv_flag == (expected > fs.threshold)
    for thr, flag in ((expected - 1e-3, True), (expected + 1e-3, False)):  # the flag follows the stored threshold
        saved = json_.loads(path.read_text())
        path.write_text(json_.dumps({**saved, "threshold": thr}))
        with Predictor(random_meso4, detector="haar", adv_detector=path) as pred:
            assert pred.analyze(astronaut_png).adv_flag is flag
