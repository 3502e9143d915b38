"""evaluate_checkpoint reports, the one-class warning end to end, and the comparison tables."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from fakescope.cli.main import app
from fakescope.data.manifest import read_manifest
from fakescope.errors import ManifestError
from fakescope.eval import aggregate_scores, binary_metrics, compare_runs, cross_dataset_matrix, evaluate_checkpoint
from fakescope.models import create_detector, save_checkpoint
from fakescope.train import TrainConfig, predict_scores
from fakescope.utils.runinfo import write_run_info


def _meso(seed: int, bias: float | None = None) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = create_detector("meso4").eval()
    if bias is not None:  # force every prediction to one class
        last = model.head[-1]
        with torch.no_grad():
            last.weight.zero_()
            last.bias.fill_(bias)
    return model


def _run_dir(root: Path, name: str, seed: int, optimizer: str, bias: float | None = None) -> Path:
    run = root / name
    model = _meso(seed, bias)
    config = TrainConfig(model="meso4", optimizer=optimizer, epochs=2, seed=seed)
    write_run_info(run, config.to_dict())
    save_checkpoint(model, run / "best.safetensors", threshold=0.45, val_metrics={"val_auc": 0.61, "val_loss": 0.69})
    with open(run / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "val_auc", "seconds"])
        w.writerows([[0, 0.55, 1.5], [1, 0.61, 2.25]])
    return run


def test_evaluate_report_matches_direct_computation(demo_manifest: Path, tmp_path: Path) -> None:
    model = _meso(1)
    ckpt = save_checkpoint(model, tmp_path / "m.safetensors", threshold=0.42)
    out = tmp_path / "eval"
    report = evaluate_checkpoint(ckpt, demo_manifest, split="test", out_dir=out, aggregation="max")
    for name in ("report.json", "report.md", "roc.png", "pr.png", "frame_scores.csv", "video_scores.csv"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "roc.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    df = read_manifest(demo_manifest)
    test = df[df["split"] == "test"].reset_index(drop=True)
    probs = predict_scores(model, test, demo_manifest.parent)
    y = test["label"].to_numpy()
    assert report["threshold"] == pytest.approx(0.42) and report["threshold_source"] == "validation"
    assert report["n_frames"] == len(test) and report["n_videos"] == test["video_id"].nunique()
    for thr, key in ((0.42, "at_threshold"), (0.5, "at_0.5")):
        direct = binary_metrics(y, probs, thr)
        for metric in ("auc", "ap", "eer", "log_loss", "accuracy", "balanced_accuracy"):
            assert report["frame"][key][metric] == pytest.approx(direct[metric], abs=1e-6), metric
        assert report["frame"][key]["confusion"] == direct["confusion"]
    videos = aggregate_scores(test["video_id"], probs, "max", track_ids=test["track_id"], labels=y)
    direct_video = binary_metrics(videos["label"], videos["fake_prob"], 0.42)
    assert report["video"]["at_threshold"]["auc"] == pytest.approx(direct_video["auc"], abs=1e-6)
    saved = json.loads((out / "report.json").read_text())
    assert saved["frame"]["at_threshold"]["auc"] == pytest.approx(report["frame"]["at_threshold"]["auc"])
    assert "frame" in (out / "report.md").read_text()
    with pytest.raises(ManifestError, match="no rows in split 'holdout'"):
        evaluate_checkpoint(ckpt, demo_manifest, split="holdout")


def test_one_class_model_gets_a_loud_warning(demo_manifest: Path, tmp_path: Path) -> None:
    ckpt = save_checkpoint(_meso(0, bias=12.0), tmp_path / "allfake.safetensors", threshold=0.5)
    result = CliRunner().invoke(app, ["evaluate", str(ckpt), str(demo_manifest), "--out", str(tmp_path / "ev")])
    assert result.exit_code == 0, result.output
    assert "WARNING" in result.output and "'fake'" in result.output
    report = json.loads((tmp_path / "ev" / "report.json").read_text())
    assert report["frame"]["at_threshold"]["balanced_accuracy"] == pytest.approx(0.5)
    assert report["warnings"] and "WARNING" in (tmp_path / "ev" / "report.md").read_text()
    all_real = evaluate_checkpoint(save_checkpoint(_meso(0, bias=-12.0), tmp_path / "r.safetensors"), demo_manifest)
    assert len(all_real["warnings"]) == 2 and all("'real'" in w for w in all_real["warnings"])  # frame and video


def test_compare_builds_the_table_from_two_runs(demo_manifest: Path, tmp_path: Path) -> None:
    a = _run_dir(tmp_path, "run_a", 0, "adam")
    b = _run_dir(tmp_path, "run_b", 1, "sgd")
    evaluate_checkpoint(a / "best.safetensors", demo_manifest, "test", out_dir=a / "eval-test")
    table = compare_runs([a, b], tmp_path / "cmp")
    assert list(table["run"]) == ["run_a", "run_b"]
    n_params = sum(p.numel() for p in _meso(0).parameters())
    assert (table["parameters"] == n_params).all() and (table["GFLOPs"] > 0).all()
    assert table["input"].tolist() == ["256x256", "256x256"]
    assert (
        table["optimizer"].str.startswith(("adam", "sgd")).all()
        and table["training time (s)"].tolist() == [pytest.approx(3.75)] * 2
    )
    rep = json.loads((a / "eval-test" / "report.json").read_text())
    assert table.loc[0, "frame AUC"] == pytest.approx(rep["frame"]["at_threshold"]["auc"])
    assert table.loc[0, "metrics from"].startswith("test")
    assert table.loc[1, "frame AUC"] == pytest.approx(0.61) and table.loc[1, "metrics from"].startswith("validation")
    for ext in ("md", "csv", "html"):
        text = (tmp_path / "cmp" / f"comparison.{ext}").read_text()
        assert "run_a" in text and "run_b" in text
    result = CliRunner().invoke(app, ["compare", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "run_a" in result.output and "run_b" in result.output


def test_cross_dataset_matrix(demo_manifest: Path, tmp_path: Path) -> None:
    a = _run_dir(tmp_path, "run_a", 0, "adam")
    b = _run_dir(tmp_path, "run_b", 1, "adam")
    matrix = cross_dataset_matrix([a, b], [demo_manifest], tmp_path / "x")
    assert matrix.shape == (2, 2) and list(matrix.iloc[:, 0]) == ["run_a", "run_b"]
    auc = matrix.iloc[:, 1].to_numpy(float)
    assert np.all((auc >= 0) & (auc <= 1))
    direct = evaluate_checkpoint(a / "best.safetensors", demo_manifest, "test")
    assert auc[0] == pytest.approx(direct["frame"]["at_threshold"]["auc"])
    assert (tmp_path / "x" / "cross_dataset.html").is_file()


def _pil_probs(model: torch.nn.Module, paths: list[Path]) -> np.ndarray:
    """P(fake) of crop files read with Pillow and scored by the model's own forward (no fakescope data code)."""
    from PIL import Image

    out = []
    with torch.no_grad():
        for i in range(0, len(paths), 16):
            batch = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths[i : i + 16]])
            x = torch.from_numpy(batch).permute(0, 3, 1, 2).float() / 255
            out.append(torch.sigmoid(model.eval()(x)).reshape(-1).numpy())
    return np.concatenate(out)


def test_evaluate_equals_an_independent_reference(demo_manifest: Path, tmp_path: Path) -> None:
    """Crops read with Pillow, the model's forward, scikit-learn metrics and a pandas group-by per video."""
    import pandas as pd
    from sklearn import metrics as skm

    model = _meso(3)
    ckpt = save_checkpoint(model, tmp_path / "m.safetensors", threshold=0.47)
    report = evaluate_checkpoint(ckpt, demo_manifest, split="test", out_dir=tmp_path / "eval", aggregation="mean")
    test = pd.read_parquet(demo_manifest)
    test = test[test["split"] == "test"].reset_index(drop=True)
    assert model.cfg.input_size == 256 and len(test) > 20  # the demo crops are 256 px: no resize
    p = _pil_probs(model, [demo_manifest.parent / c for c in test["crop_path"]])
    y = test["label"].to_numpy()
    frame = report["frame"]["at_threshold"]
    assert frame["auc"] == pytest.approx(skm.roc_auc_score(y, p), abs=1e-6)
    assert frame["ap"] == pytest.approx(skm.average_precision_score(y, p), abs=1e-6)
    assert frame["log_loss"] == pytest.approx(skm.log_loss(y, np.clip(p, 1e-7, 1 - 1e-7)), abs=1e-4)
    assert frame["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, p >= 0.47), abs=1e-9)
    # per video: mean per person track, tracks under half the longest ignored, then the highest track
    tracks = (
        test.assign(p=p).groupby(["video_id", "track_id"]).agg(p=("p", "mean"), n=("p", "size"), y=("label", "first"))
    )
    tracks = tracks[tracks["n"] >= 0.5 * tracks.groupby(level="video_id")["n"].transform("max")]
    videos = tracks.groupby(level="video_id").agg(p=("p", "max"), y=("y", "first"))
    assert report["n_videos"] == len(videos)
    assert report["video"]["at_threshold"]["auc"] == pytest.approx(
        skm.roc_auc_score(videos["y"], videos["p"]), abs=1e-6
    )
    saved = pd.read_csv(tmp_path / "eval" / "video_scores.csv").set_index("video_id")
    np.testing.assert_allclose(saved.loc[videos.index, "fake_prob"], videos["p"], atol=1e-6)


def test_crops_made_with_another_contract_are_flagged(demo_manifest: Path, tmp_path: Path) -> None:
    """A model trained on 160 px margin-0 crops scored on the demo's crops: evaluate says so, --cross refuses."""
    from dataclasses import replace

    from fakescope.data.contract import manifest_contract

    made = manifest_contract(demo_manifest)
    model = _meso(0)
    model.set_cfg(replace(model.cfg, **made))
    same = save_checkpoint(model, tmp_path / "same" / "best.safetensors")
    assert evaluate_checkpoint(same, demo_manifest, split="test")["contract_mismatch"] is None
    model.set_cfg(replace(model.cfg, crop_margin=0.0))
    other = save_checkpoint(model, tmp_path / "other" / "best.safetensors")
    report = evaluate_checkpoint(other, demo_manifest, split="test")
    assert "crop_margin" in report["contract_mismatch"] and "--margin 0.0" in report["contract_mismatch"]
    assert not cross_dataset_matrix([tmp_path / "same"], [demo_manifest]).empty
    with pytest.raises(ValueError, match=r"crop_margin .*prepare the data with the model's contract"):
        cross_dataset_matrix([tmp_path / "other"], [demo_manifest])
