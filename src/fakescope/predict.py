"""Score images and videos end to end: frames -> faces -> detector -> per-track and per-file verdicts.

:class:`Predictor` loads a detector once (a named pretrained detector such as ``mesoinception4.mesonet_df``, a
fakescope ``.safetensors`` checkpoint, or an exported ``.onnx`` file) plus a face detector, and
:meth:`Predictor.analyze` turns one file into a :class:`FileResult`. A file that cannot be read never raises: it
becomes a result with ``verdict="error"`` and the reason, so a batch always finishes.

Pipeline for a video: ``num_frames`` evenly spaced frames (:func:`fakescope.data.media.sample_frames`), faces
detected and tracked across frames (:func:`fakescope.data.faces.extract_faces`), every face crop scored in
batches, frame scores aggregated per person track (``mean``, ``max`` or the DFDC winner's ``confident_mean``),
then per file: the file score is the highest score among the main tracks (a video is fake when any person in
it is fake; tracks seen in fewer than half as many frames as the longest track are ignored as spurious
detections unless they are all there is).

Images are analysed as one frame. Crops follow the detector's crop contract (:mod:`fakescope.data.contract`:
crop size, margin, alignment and interpolation, stored in its checkpoint), so a face is cut exactly as its
training crops were. An image that is already a face crop (the face fills the picture, as in face datasets) is
recognised by the rule ``prepare`` uses (:func:`fakescope.data.contract.face_in_crop`) and becomes its crop as the
contract's ``crop_pictures`` says: whole, or its face cut like any other (:func:`fakescope.data.contract.crop_picture`).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from fakescope import DEFAULT_DETECTOR as DEFAULT_MODEL
from fakescope.errors import FakescopeError, MediaError

_logger = logging.getLogger(__name__)

AGGREGATIONS = ("mean", "max", "confident_mean")
RUNTIMES = ("torch", "onnx")
Verdict = Literal["fake", "real", "no-face", "error"]


@dataclass
class FrameScore:
    """P(fake) of one face in one frame.

    Attributes:
        frame_index: index of the frame in the video (0 for an image).
        timestamp: seconds from the start of the video.
        track_id: person track the face belongs to.
        box: face box ``x1, y1, x2, y2`` in full-resolution pixels.
        fake_prob: P(fake) of the face crop.
    """

    frame_index: int
    timestamp: float
    track_id: int
    box: tuple[float, float, float, float]
    fake_prob: float


@dataclass
class TrackScore:
    """Aggregated P(fake) of one person track.

    Attributes:
        track_id: track id (as assigned by the face tracker).
        fake_prob: aggregated P(fake) over the track's faces.
        n_faces: faces scored in this track.
        used: whether the track counted towards the file verdict (spurious short tracks do not).
    """

    track_id: int
    fake_prob: float
    n_faces: int
    used: bool = True


@dataclass
class FileResult:
    """The analysis of one file.

    Attributes:
        path: the file as given.
        kind: ``"image"``, ``"video"`` or None when the file could not be identified.
        verdict: ``"fake"`` / ``"real"`` (``fake_prob >= threshold`` is fake), ``"no-face"`` or ``"error"``.
        fake_prob: file-level P(fake); None for ``no-face`` and ``error``.
        threshold: decision threshold used.
        aggregation: frame-to-track aggregation method.
        model: detector name.
        runtime: ``"torch"`` or ``"onnx"``.
        n_frames: frames decoded and searched for faces.
        n_faces: face crops scored.
        tracks: per-person scores.
        frames: per-face, per-frame scores.
        error: reason of an ``error`` verdict.
        adv_suspicion: adversarial-suspicion score of the file (highest over its faces) when a fitted
            feature-squeezing detector was given, else None.
        adv_flag: whether ``adv_suspicion`` exceeds the fitted detector's threshold (None without one).
        evidence: paths of Grad-CAM overlays and the timeline plot when explanations were asked for.
        timings: seconds spent per stage (``decode``, ``detect``, ``infer``, ``explain``, ``total``).
    """

    path: str
    kind: str | None = None
    verdict: Verdict = "error"
    fake_prob: float | None = None
    threshold: float = 0.5
    aggregation: str = "mean"
    model: str = ""
    runtime: str = "torch"
    n_frames: int = 0
    n_faces: int = 0
    tracks: list[TrackScore] = field(default_factory=list)
    frames: list[FrameScore] = field(default_factory=list)
    error: str | None = None
    adv_suspicion: float | None = None
    adv_flag: bool | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (tuples become lists; floats stay floats)."""
        d = asdict(self)
        for fr in d["frames"]:
            fr["box"] = [float(v) for v in fr["box"]]
        return d


# --------------------------------------------------------------------------------------------------- aggregation
def aggregate_probs(probs: Sequence[float] | np.ndarray, method: str = "mean") -> float:
    """Aggregate P(fake) scores of one track with ``mean``, ``max`` or ``confident_mean``.

    Delegates to :func:`fakescope.eval.aggregate.reduce_scores` (one implementation for evaluation and
    prediction).
    """
    from fakescope.eval.aggregate import reduce_scores

    if len(probs) == 0:
        raise ValueError("no scores to aggregate")
    return reduce_scores(probs, method)


def aggregate_tracks(frames: list[FrameScore], method: str) -> tuple[list[TrackScore], float]:
    """Per-track scores and the file score (the highest among the main tracks).

    A track is *main* when it has at least half as many faces as the longest track
    (:func:`fakescope.eval.aggregate.main_tracks`, the rule ``evaluate`` applies too); shorter tracks are kept in
    the output (``used=False``) but do not decide the verdict.
    """
    from fakescope.eval.aggregate import main_tracks

    by_track: dict[int, list[float]] = {}
    for fs in frames:
        by_track.setdefault(fs.track_id, []).append(fs.fake_prob)
    items = sorted(by_track.items())
    used = main_tracks([len(v) for _, v in items])
    tracks = [
        TrackScore(tid, aggregate_probs(v, method), len(v), used=bool(u))
        for (tid, v), u in zip(items, used, strict=True)
    ]
    return tracks, max(t.fake_prob for t in tracks if t.used)


# --------------------------------------------------------------------------------------------------- model loading
@dataclass
class LoadedModel:
    """A detector ready for inference.

    Attributes:
        contract: how face crops are cut for it (from its cfg / checkpoint / ONNX metadata).
        net: a callable mapping [0, 1] images ``B,3,S,S`` (torch tensor) to logits ``B``; a torch
            :class:`~fakescope.models.Detector` or an :class:`~fakescope.export.OnnxDetector`.
        torch_model: the torch detector when available (Grad-CAM and adversarial scores need it), else None.
        name: detector name for reports.
        input_size: ``S``.
        threshold: decision threshold stored with the weights (0.5 when none).
        runtime: ``"torch"`` or ``"onnx"``.
        info: provenance (config, what it was trained on).
    """

    net: Callable[..., Any]
    torch_model: Any
    name: str
    input_size: int
    threshold: float
    runtime: str
    info: dict[str, Any]
    contract: Any = None

    def __post_init__(self) -> None:
        if self.contract is None:
            from fakescope.data.contract import CropContract

            self.contract = CropContract(size=self.input_size)


def load_model(
    model: Any = DEFAULT_MODEL,
    runtime: str = "torch",
    *,
    weights_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    num_threads: int | None = None,
) -> LoadedModel:
    """Load a detector for prediction.

    Args:
        model: anything :func:`fakescope.models.load_model` takes (a named pretrained detector such as
            ``meso4.mesonet_df``, a named ensemble, a ``.safetensors`` checkpoint, a k-fold ``ensemble.json``, a
            built module, or a bare architecture: random weights, benchmarks only), or an exported ``.onnx`` file.
        runtime: ``"torch"`` (eager PyTorch) or ``"onnx"`` (ONNX Runtime; torch models are exported in memory).
        weights_dir: offline folder holding pretrained weight files.
        cache_dir: download cache for pretrained weights.
        num_threads: ONNX Runtime intra-op threads (default: all cores).

    Raises:
        ValueError: unknown runtime or model name.
        CheckpointError: unreadable checkpoint.
        DownloadError: pretrained weights unavailable.
    """
    import torch

    from fakescope.data.contract import CropContract
    from fakescope.export import OnnxDetector, export_onnx_bytes
    from fakescope.models import Detector, DetectorCfg
    from fakescope.models import load_model as load_torch_model

    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of: {', '.join(RUNTIMES)}")
    threshold = 0.5
    info: dict[str, Any] = {}
    if isinstance(model, torch.nn.Module):
        torch_model: Any = model
        name = getattr(getattr(model, "cfg", None), "name", type(model).__name__)
    else:
        path = Path(str(model))
        if path.suffix.lower() == ".onnx":
            onnx = OnnxDetector(path, num_threads=num_threads)
            meta = onnx.meta
            onnx_cfg = DetectorCfg.from_dict(meta["cfg"]) if isinstance(meta.get("cfg"), dict) else None
            return LoadedModel(
                net=onnx,
                torch_model=None,
                name=str(meta.get("model", path.stem)),
                input_size=onnx.input_size,
                threshold=float(meta.get("threshold", 0.5)),
                runtime="onnx",
                info={"source": str(path), **meta},
                contract=CropContract.from_cfg(onnx_cfg) if onnx_cfg is not None else None,
            )
        torch_model, meta = load_torch_model(model, weights_dir=weights_dir, cache_dir=cache_dir)
        threshold = float(meta.get("threshold", 0.5))
        name = str(meta.get("model") or meta.get("name") or path.stem)
        if "source" in meta:
            info = {"source": meta["source"], "checkpoint": {k: meta[k] for k in meta if k != "config"}}
        elif isinstance(torch_model, Detector) and "." not in name:
            _logger.warning("%s has no pretrained weights tag: its scores are meaningless", name)
        if "members" in meta:
            info["members"] = meta["members"]
    torch_model.eval()
    cfg = getattr(torch_model, "cfg", None)
    if cfg is not None:
        info.setdefault("cfg", cfg.to_dict())
        if cfg.trained_on:
            info["trained_on"] = cfg.trained_on
    input_size = int(cfg.input_size) if cfg is not None else 224
    if not isinstance(torch_model, Detector):
        _logger.debug("model %s is not a fakescope Detector; assuming the Detector call contract", name)
    net: Any = torch_model
    if runtime == "onnx":
        meta = {"model": name, "threshold": threshold, **({"cfg": cfg.to_dict()} if cfg is not None else {})}
        net = OnnxDetector(export_onnx_bytes(torch_model, input_size, metadata=meta), num_threads=num_threads)
    contract = CropContract.from_cfg(cfg) if cfg is not None else None
    return LoadedModel(net, torch_model, name, input_size, threshold, runtime, info, contract)


# --------------------------------------------------------------------------------------------------- predictor
class Predictor:
    """Load a detector and a face detector once; analyse many files.

    Args:
        model: see :func:`load_model` (default: the MesoInception-4 weights trained on MesoNet's Deepfake set).
        runtime: ``"torch"`` or ``"onnx"``.
        detector: face detector backend (``"blazeface"`` or ``"haar"``), or an object with ``.detect``.
        num_frames: frames sampled evenly from each video.
        aggregation: ``mean``, ``max`` or ``confident_mean`` (frames -> track).
        threshold: decision threshold; default the one stored with the weights, else 0.5.
        batch_size: face crops per inference batch.
        margin: extra context around each face box (fraction of the box size); None: the detector's contract
            (``cfg.crop_margin``, stored in its checkpoint). Changing it scores crops the model was not trained on.
        max_faces: at most this many faces per frame (None: all).
        weights_dir: offline folder with the detector's pretrained weights.
        cache_dir: download cache.
        detector_weights_dir: offline folder with the face detector's model file.
        adv_detector: a fitted :class:`fakescope.defenses.FeatureSqueezing` JSON file; adds ``adv_suspicion``.
        num_threads: ONNX Runtime intra-op threads (default: all cores).
    """

    def __init__(
        self,
        model: Any = DEFAULT_MODEL,
        runtime: str = "torch",
        detector: Any = "blazeface",
        num_frames: int = 32,
        aggregation: str = "mean",
        threshold: float | None = None,
        *,
        batch_size: int = 32,
        margin: float | None = None,
        max_faces: int | None = None,
        weights_dir: str | Path | None = None,
        cache_dir: str | Path | None = None,
        detector_weights_dir: str | Path | None = None,
        adv_detector: str | Path | None = None,
        num_threads: int | None = None,
    ) -> None:
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {aggregation!r}; choose one of: {', '.join(AGGREGATIONS)}")
        if num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {num_frames}")
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.loaded = load_model(model, runtime, weights_dir=weights_dir, cache_dir=cache_dir, num_threads=num_threads)
        self.runtime = self.loaded.runtime
        self.num_frames = num_frames
        self.aggregation = aggregation
        self.threshold = float(threshold) if threshold is not None else self.loaded.threshold
        self.batch_size = batch_size
        self.contract = self.loaded.contract
        if margin is not None:
            self.contract = replace(self.contract, margin=float(margin))
        self.margin = self.contract.margin
        self.max_faces = max_faces
        self._owns_detector = isinstance(detector, str)
        if isinstance(detector, str):
            self.detector_name = detector
            self.face_detector = _create_face_detector(detector, detector_weights_dir, weights_dir, cache_dir)
        else:
            self.detector_name = type(detector).__name__
            self.face_detector = detector
        self.adv = None
        if adv_detector is not None:
            self.adv = _load_adv_detector(adv_detector, self.loaded)

    # -- public API -------------------------------------------------------------------------------------------
    @property
    def model_name(self) -> str:
        """Name of the loaded detector."""
        return self.loaded.name

    def info(self) -> dict[str, Any]:
        """What this predictor runs: model, runtime, threshold, aggregation, frames, face detector."""
        return {
            "model": self.loaded.name,
            "runtime": self.runtime,
            "input_size": self.loaded.input_size,
            "crop_contract": self.contract.to_dict(),
            "threshold": self.threshold,
            "aggregation": self.aggregation,
            "num_frames": self.num_frames,
            "face_detector": self.detector_name,
            "adv_detector": self.adv is not None,
            **self.loaded.info,
        }

    def close(self) -> None:
        """Release the face detector this predictor created (one passed in stays open for its owner)."""
        close = getattr(self.face_detector, "close", None)
        if close is not None and self._owns_detector:
            close()

    def __enter__(self) -> Predictor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def analyze(
        self,
        path: str | Path,
        explain_dir: str | Path | None = None,
        progress: Callable[[float], None] | None = None,
    ) -> FileResult:
        """Analyse one image or video; never raises for a bad file (it becomes ``verdict="error"``).

        Args:
            path: image or video file.
            explain_dir: when given, write Grad-CAM overlays per face and (videos) a P(fake) timeline under
                ``explain_dir/<file stem>/`` and list them in ``FileResult.evidence``.
            progress: called with the fraction done (0 to 1) after each stage (decode, detect, infer, explain).
        """
        result = FileResult(
            path=str(path),
            threshold=self.threshold,
            aggregation=self.aggregation,
            model=self.loaded.name,
            runtime=self.runtime,
        )
        t_start = time.perf_counter()
        try:
            self._analyze(Path(path), result, explain_dir, progress or (lambda _: None))
        except MediaError as exc:
            _fail(result, exc.reason)
        except FakescopeError as exc:
            _fail(result, str(exc))
        except Exception as exc:  # one bad file must never stop a batch: it becomes an error row
            _logger.debug("analysis of %s failed", path, exc_info=True)
            _fail(result, f"{type(exc).__name__}: {exc}")
        result.timings["total"] = time.perf_counter() - t_start
        if progress is not None:
            progress(1.0)
        return result

    def analyze_many(
        self,
        paths: Sequence[str | Path],
        explain_dir: str | Path | None = None,
        on_result: Callable[[FileResult], None] | None = None,
    ) -> list[FileResult]:
        """Analyse files in order; ``on_result`` is called after each (progress bars)."""
        results = []
        for p in paths:
            res = self.analyze(p, explain_dir=explain_dir)
            results.append(res)
            if on_result is not None:
                on_result(res)
        return results

    def score_crops(self, crops: np.ndarray) -> np.ndarray:
        """P(fake) of face crops ``N,S,S,3`` uint8 RGB (already at the model's input size)."""
        import torch

        if len(crops) == 0:
            return np.zeros(0, dtype=np.float32)
        out = []
        with torch.inference_mode():
            for i in range(0, len(crops), self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(crops[i : i + self.batch_size])).permute(0, 3, 1, 2)
                logits = self.loaded.net(x.float().div_(255.0))
                out.append(torch.sigmoid(torch.as_tensor(logits).reshape(-1).float()).numpy())
        return np.concatenate(out)

    def face_inputs(self, path: str | Path) -> list[Any]:
        """The face crops ``analyze`` would score for ``path``, as model inputs (``FaceCrop.image``: ``S,S,3``).

        Raises:
            MediaError: the file cannot be read.
        """
        kind, frames = self._decode(Path(path))
        return self._faces(frames, kind)

    # -- internals --------------------------------------------------------------------------------------------
    def _decode(self, path: Path) -> tuple[str, list[Any]]:
        from fakescope.data import media

        if path.is_dir():
            raise MediaError(path, "is a directory, not a media file")
        if not path.exists():
            raise MediaError(path, "file not found")
        kind = media.media_kind(path)
        if kind == "image":
            return kind, [media.Frame(index=0, timestamp=0.0, image=media.read_image(path))]
        return kind, media.sample_frames(path, num_frames=self.num_frames)

    def _analyze(
        self, path: Path, result: FileResult, explain_dir: str | Path | None, progress: Callable[[float], None]
    ) -> None:
        t0 = time.perf_counter()
        kind, frames = self._decode(path)
        result.kind = kind
        t1 = time.perf_counter()
        result.timings["decode"] = t1 - t0
        progress(0.4)
        result.n_frames = len(frames)
        if not frames:
            raise MediaError(path, "no frames could be decoded")
        crops = self._faces(frames, kind)
        t2 = time.perf_counter()
        result.timings["detect"] = t2 - t1
        progress(0.6)
        if not crops:
            result.verdict = "no-face"
            result.timings["infer"] = 0.0
            return
        images = np.stack([c.image for c in crops])
        probs = self.score_crops(images)
        t3 = time.perf_counter()
        result.timings["infer"] = t3 - t2
        progress(0.8 if explain_dir is not None else 0.95)
        result.frames = [
            FrameScore(
                int(c.frame_index), float(c.timestamp), int(c.track_id), tuple(float(v) for v in c.box), float(p)
            )
            for c, p in zip(crops, probs, strict=True)
        ]
        result.n_faces = len(crops)
        result.tracks, file_prob = aggregate_tracks(result.frames, self.aggregation)
        if not math.isfinite(file_prob):
            raise ValueError("the detector returned a non-finite score")
        result.fake_prob = file_prob
        result.verdict = "fake" if file_prob >= self.threshold else "real"
        if self.adv is not None:
            scores = self.adv.score(images)
            result.adv_suspicion = float(np.max(scores))
            thr = getattr(self.adv, "threshold", None)
            result.adv_flag = bool(result.adv_suspicion > thr) if thr is not None else None
        if explain_dir is not None:
            t4 = time.perf_counter()
            self._explain(path, result, images, kind, Path(explain_dir))
            result.timings["explain"] = time.perf_counter() - t4

    def _faces(self, frames: list[Any], kind: str) -> list[Any]:
        """Face crops at the model's input size, cut as the detector's crop contract says."""
        from fakescope.data.contract import crop_picture, face_in_crop
        from fakescope.data.faces import FaceCrop, extract_faces

        c = self.contract
        if kind == "image":
            whole = face_in_crop(frames[0].image, self.face_detector)
            if whole is not None:
                _logger.info("image is a face crop: scoring it whole")
                crop = c.model_input(crop_picture(frames[0].image, whole, c))
                return [FaceCrop(0, 0.0, 0, tuple(whole.box), whole.score, crop, whole.landmarks)]
        crops = extract_faces(
            frames,
            self.face_detector,
            size=c.cut_size,
            margin=c.margin,
            max_faces=self.max_faces,
            align=c.align,
            interpolation=c.interpolation,
        )
        for crop in crops:
            crop.image = c.model_input(crop.image)
        return crops

    def _explain(self, path: Path, result: FileResult, images: np.ndarray, kind: str, explain_dir: Path) -> None:
        from fakescope.explain import gradcam_heatmaps, plot_timeline, save_overlay

        out = explain_dir / _safe_stem(path)
        out.mkdir(parents=True, exist_ok=True)
        overlays: list[str] = []
        if self.loaded.torch_model is None:
            result.evidence["note"] = "Grad-CAM needs the PyTorch model; an .onnx file alone cannot be explained"
        else:
            heat = gradcam_heatmaps(self.loaded.torch_model, images, batch_size=min(self.batch_size, 16))
            for fs, img, hm in zip(result.frames, images, heat, strict=True):
                p = out / f"frame{fs.frame_index:05d}_track{fs.track_id}_p{fs.fake_prob:.2f}.png"
                save_overlay(img, hm, p)
                overlays.append(str(p))
        result.evidence["heatmaps"] = overlays
        if kind == "video":
            tl = out / "timeline.png"
            plot_timeline(result.frames, self.threshold, tl, title=f"{path.name}: P(fake) over time")
            result.evidence["timeline"] = str(tl)


# --------------------------------------------------------------------------------------------------- helpers
def _fail(result: FileResult, reason: str) -> None:
    result.verdict = "error"
    result.error = reason
    result.fake_prob = None
    result.tracks, result.frames = [], []
    result.n_faces = 0


def _safe_stem(path: Path) -> str:
    stem = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in path.stem)
    return stem or "file"


def _create_face_detector(
    name: str, detector_weights_dir: str | Path | None, weights_dir: str | Path | None, cache_dir: str | Path | None
) -> Any:
    """Create the face detector; without its own folder, try the model's offline folder, then the cache."""
    from fakescope.data.faces import create_face_detector
    from fakescope.errors import DownloadError

    if detector_weights_dir is not None or weights_dir is None:
        return create_face_detector(name, weights_dir=detector_weights_dir, cache_dir=cache_dir)
    try:
        return create_face_detector(name, weights_dir=weights_dir, cache_dir=cache_dir)
    except DownloadError:
        return create_face_detector(name, weights_dir=None, cache_dir=cache_dir)


def _load_adv_detector(path: str | Path, loaded: LoadedModel) -> Any:
    """Load a fitted feature-squeezing detector (JSON) bound to the predictor's torch model."""
    from fakescope.defenses.evaluate import load_detectors

    if loaded.torch_model is None:
        raise ValueError("--adv-detector needs the PyTorch model (a checkpoint or a name), not an .onnx file")
    squeezer, _, _ = load_detectors(path, loaded.torch_model)
    return _SqueezeAdapter(squeezer)


class _SqueezeAdapter:
    """Feed uint8 crops ``N,S,S,3`` to a :class:`fakescope.defenses.FeatureSqueezing` as [0, 1] tensors."""

    def __init__(self, squeezer: Any) -> None:
        self.squeezer = squeezer
        self.threshold = squeezer.threshold

    def score(self, images: np.ndarray) -> np.ndarray:
        import torch

        x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float().div(255.0)
        return np.asarray(self.squeezer.score(x), dtype=np.float64).reshape(-1)
