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

import functools
import logging
import math
import queue
import threading
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
SAMPLINGS = ("even", "keyframes")
#: Decoded frames waiting for face detection at most (the decoder thread blocks beyond it: bounded memory).
QUEUE_FRAMES = 4
#: Face crops scored together while a video is still being decoded (ONNX Runtime; the rest in a last batch).
STREAM_BATCH = 8
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
    torch_loader: Callable[[], Any] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.contract is None:
            from fakescope.data.contract import CropContract

            self.contract = CropContract(size=self.input_size)

    def get_torch_model(self) -> Any:
        """The torch detector, loaded now if only its ONNX export was (Grad-CAM, adversarial scores); or None."""
        if self.torch_model is None and self.torch_loader is not None:
            self.torch_model = self.torch_loader()
        return self.torch_model


def load_model(
    model: Any = DEFAULT_MODEL,
    runtime: str = "torch",
    *,
    weights_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    num_threads: int | None = None,
) -> LoadedModel:
    """Load a detector for prediction.

    With ``runtime="onnx"`` torch is not imported at all for an ``.onnx`` file, nor for a checkpoint or bundled
    detector exported before: the export is kept in the cache (``<cache>/onnx/``, keyed by the weights' SHA-256
    and the fakescope version) and reused. The torch model is then loaded only if something needs it
    (:meth:`LoadedModel.get_torch_model`: Grad-CAM, adversarial scores).

    Args:
        model: anything :func:`fakescope.models.load_model` takes (a named pretrained detector such as
            ``meso4.mesonet_df``, a named ensemble, a ``.safetensors`` checkpoint, a k-fold ``ensemble.json``, a
            built module, or a bare architecture: random weights, benchmarks only), or an exported ``.onnx`` file.
        runtime: ``"torch"`` (eager PyTorch), ``"onnx"`` (ONNX Runtime; torch models are exported in memory) or
            ``"auto"`` (:func:`resolve_runtime`).
        weights_dir: offline folder holding pretrained weight files.
        cache_dir: download cache for pretrained weights (and the ONNX exports).
        num_threads: ONNX Runtime intra-op threads (default: all cores).

    Raises:
        ValueError: unknown runtime or model name.
        CheckpointError: unreadable checkpoint.
        DownloadError: pretrained weights unavailable.
    """
    if runtime == "auto":
        runtime = resolve_runtime(model, cache_dir)
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of: auto, {', '.join(RUNTIMES)}")
    cached: Path | None = None
    if isinstance(model, str | Path):
        path = Path(str(model))
        if path.suffix.lower() == ".onnx":
            return _load_onnx(path, num_threads)
        if runtime == "onnx":
            cached = onnx_cache_path(model, cache_dir)
            if cached is not None and cached.is_file():
                from fakescope.errors import CheckpointError

                try:
                    loaded = _load_onnx(cached, num_threads)
                except CheckpointError as exc:
                    _logger.warning("%s: unusable cached export, exporting again (%s)", cached, exc)
                else:
                    loaded.torch_loader = lambda: _load_torch(model, weights_dir, cache_dir)[0]
                    return loaded
    torch_model, name, threshold, info, cfg = _load_torch(model, weights_dir, cache_dir)
    input_size = int(cfg.input_size) if cfg is not None else 224
    net: Any = torch_model
    if runtime == "onnx":
        from fakescope.export import OnnxDetector, export_onnx_bytes

        meta = {"model": name, "threshold": threshold, "info": info}
        if cfg is not None:
            meta["cfg"] = cfg.to_dict()
        data = export_onnx_bytes(torch_model, input_size, metadata=meta)
        if cached is not None:
            from fakescope.utils.io import atomic_write_bytes

            try:
                cached.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_bytes(cached, data)
            except OSError as exc:  # a read-only cache only costs the next start an export
                _logger.warning("cannot keep the ONNX export in %s (%s)", cached, exc)
        net = OnnxDetector(data, num_threads=num_threads)
    from fakescope.data.contract import CropContract

    contract = CropContract.from_cfg(cfg) if cfg is not None else None
    return LoadedModel(net, torch_model, name, input_size, threshold, runtime, info, contract)


def resolve_runtime(model: Any, cache_dir: str | Path | None = None) -> str:
    """What ``runtime="auto"`` means for ``model``: ``"onnx"`` when ONNX Runtime is installed and the model is an
    ``.onnx`` file or one whose export can be kept in the cache (:func:`onnx_cache_path`), else ``"torch"``.

    Later starts then skip torch altogether (about 0.5 s instead of 2.5 s to the first result on 2 cores).
    """
    import importlib.util

    if importlib.util.find_spec("onnxruntime") is None or not isinstance(model, str | Path):
        return "torch"
    if Path(str(model)).suffix.lower() == ".onnx" or onnx_cache_path(model, cache_dir) is not None:
        return "onnx"
    return "torch"


def _load_torch(model: Any, weights_dir: str | Path | None, cache_dir: str | Path | None) -> tuple[Any, ...]:
    """The torch detector in eval mode, its name, threshold, provenance and cfg."""
    import torch

    from fakescope.models import Detector
    from fakescope.models import load_model as load_torch_model

    threshold = 0.5
    info: dict[str, Any] = {}
    if isinstance(model, torch.nn.Module):
        torch_model: Any = model
        name = getattr(getattr(model, "cfg", None), "name", type(model).__name__)
    else:
        torch_model, meta = load_torch_model(model, weights_dir=weights_dir, cache_dir=cache_dir)
        threshold = float(meta.get("threshold", 0.5))
        name = str(meta.get("model") or meta.get("name") or Path(str(model)).stem)
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
    if not isinstance(torch_model, Detector):
        _logger.debug("model %s is not a fakescope Detector; assuming the Detector call contract", name)
    return torch_model, name, threshold, info, cfg


def _load_onnx(path: Path, num_threads: int | None) -> LoadedModel:
    """An exported ``.onnx`` file (no torch import)."""
    from fakescope.export import OnnxDetector

    onnx = OnnxDetector(path, num_threads=num_threads)
    meta = onnx.meta
    cfg = meta.get("cfg") if isinstance(meta.get("cfg"), dict) else None
    info = meta["info"] if isinstance(meta.get("info"), dict) else {"source": str(path), **meta}
    return LoadedModel(
        net=onnx,
        torch_model=None,
        name=str(meta.get("model", path.stem)),
        input_size=onnx.input_size,
        threshold=float(meta.get("threshold", 0.5)),
        runtime="onnx",
        info=info,
        contract=contract_from_cfg_dict(cfg) if cfg is not None else None,
    )


def contract_from_cfg_dict(cfg: dict[str, Any]) -> Any:
    """The crop contract of a ``DetectorCfg.to_dict()`` (ONNX metadata) without importing the model registry.

    Missing keys take ``DetectorCfg``'s defaults (a test keeps the two in step).
    """
    from fakescope.data.contract import CropContract

    return CropContract(
        size=int(cfg.get("input_size", 224)),
        crop_size=cfg.get("crop_size"),
        margin=float(cfg.get("crop_margin", 0.3)),
        align=bool(cfg.get("crop_align", False)),
        interpolation=str(cfg.get("interpolation", "area")),
        pictures=str(cfg.get("crop_pictures", "whole")),
    )


def onnx_cache_path(model: Any, cache_dir: str | Path | None = None) -> Path | None:
    """Where the ONNX export of ``model`` is kept, or None when its weights cannot be identified without torch.

    A ``.safetensors`` checkpoint is identified by the SHA-256 of its file. A dotted name that is not a path (a
    registered ``arch.tag`` detector, or a panel such as ``panel.dfdc_f2f``) is identified by the name itself,
    since the registry pins its weights by SHA-256, together with the SHA-256 of every weights file shipped inside
    the package. Every key also holds the fakescope version and a digest of the code that shapes the exported
    graph (the ``fakescope.models`` sources, where the registry, the panels and the families live, and
    ``fakescope.export``), so a changed member list, threshold or contract is exported again. An unknown name
    gets a key too, and then fails to load as usual. Other sources (files, folders, bare architectures without a
    dot, ``hf:`` models) are None.
    """
    import hashlib

    from fakescope import __version__
    from fakescope.utils.download import DEFAULT_CACHE, sha256_file

    text = str(model)
    path = Path(text)
    if path.suffix.lower() == ".safetensors" and path.is_file():
        label, digests = path.stem, [sha256_file(path)]
    elif "." in text and "/" not in text and ":" not in text and not path.exists():
        label, digests = text, [text, *_shipped_weights_digests()]
    else:
        return None
    key = hashlib.sha256(":".join([__version__, _export_code_digest(), *digests]).encode()).hexdigest()
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in label) or "model"
    return Path(cache_dir if cache_dir is not None else DEFAULT_CACHE) / "onnx" / f"{safe}-{key[:16]}.onnx"


@functools.cache
def _shipped_weights_digests() -> tuple[str, ...]:
    """``name=SHA-256`` of every weights file shipped in the package (hashed once per process)."""
    from fakescope.utils.download import sha256_file

    shipped = sorted((Path(__file__).parent / "models" / "weights").glob("*.safetensors"))
    return tuple(f"{p.name}={sha256_file(p)}" for p in shipped)


@functools.cache
def _export_code_digest() -> str:
    """SHA-256 over the sources that decide what an ONNX export of a named detector contains (no imports; read
    once per process: ``resolve_runtime`` and ``load_model`` both ask)."""
    import hashlib

    root = Path(__file__).parent
    digest = hashlib.sha256()
    for path in sorted([*(root / "models").rglob("*.py"), root / "export.py"]):
        digest.update(path.relative_to(root).as_posix().encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


# --------------------------------------------------------------------------------------------------- predictor
class Predictor:
    """Load a detector and a face detector once; analyse many files.

    Args:
        model: see :func:`load_model` (default: the MesoInception-4 weights trained on MesoNet's Deepfake set).
        runtime: ``"torch"``, ``"onnx"`` or ``"auto"`` (ONNX Runtime when the export can be cached, see
            :func:`resolve_runtime`).
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
        num_threads: ONNX Runtime intra-op threads (default: ``threads``, else all cores).
        sampling: ``"even"`` (``num_frames`` evenly spaced frames) or ``"keyframes"`` (at most ``num_frames`` of
            the video's keyframes: much less decoding, but other frames, so other scores; opt-in).
        threads: this predictor's CPU budget: video decoder threads, and ONNX Runtime threads unless
            ``num_threads`` is given (None: the libraries' defaults, one per core). Parallel workers get a share.
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
        sampling: str = "even",
        threads: int | None = None,
    ) -> None:
        if sampling not in SAMPLINGS:
            raise ValueError(f"unknown sampling {sampling!r}; choose one of: {', '.join(SAMPLINGS)}")
        if threads is not None and threads < 1:
            raise ValueError(f"threads must be at least 1, got {threads}")
        if aggregation not in AGGREGATIONS:
            raise ValueError(f"unknown aggregation {aggregation!r}; choose one of: {', '.join(AGGREGATIONS)}")
        if num_frames < 1:
            raise ValueError(f"num_frames must be at least 1, got {num_frames}")
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.sampling = sampling
        self.threads = threads
        if num_threads is None:
            num_threads = threads
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
            "sampling": self.sampling,
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
        if len(crops) == 0:
            return np.zeros(0, dtype=np.float32)
        if self.runtime == "onnx":  # numpy in, numpy out: no torch import
            out = []
            for i in range(0, len(crops), self.batch_size):
                x = np.ascontiguousarray(crops[i : i + self.batch_size].transpose(0, 3, 1, 2), dtype=np.float32)
                logits = np.asarray(self.loaded.net(x / np.float32(255.0)), dtype=np.float32).reshape(-1)
                out.append((1.0 / (1.0 + np.exp(-logits))).astype(np.float32))
            return np.concatenate(out)
        import torch

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
        path = Path(path)
        if self._kind(path) == "image":
            return self._image_crops(path)
        crops, _ = self._video_crops(path, {}, lambda _: None, score=False)
        return crops

    # -- internals --------------------------------------------------------------------------------------------
    def _kind(self, path: Path) -> str:
        from fakescope.data import media

        if path.is_dir():
            raise MediaError(path, "is a directory, not a media file")
        if not path.exists():
            raise MediaError(path, "file not found")
        return media.media_kind(path)

    def _analyze(
        self, path: Path, result: FileResult, explain_dir: str | Path | None, progress: Callable[[float], None]
    ) -> None:
        kind = self._kind(path)
        result.kind = kind
        if kind == "image":
            crops, probs = self._score_image(path, result, progress)
        else:
            crops, probs = self._video_crops(path, result.timings, progress, score=True)
            result.n_frames = int(result.timings.pop("n_frames", 0))
        if not crops:
            result.verdict = "no-face"
            return
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
        images = np.stack([c.image for c in crops]) if self.adv is not None or explain_dir is not None else None
        if self.adv is not None:
            scores = self.adv.score(images)
            result.adv_suspicion = float(np.max(scores))
            thr = getattr(self.adv, "threshold", None)
            result.adv_flag = bool(result.adv_suspicion > thr) if thr is not None else None
        if explain_dir is not None:
            t4 = time.perf_counter()
            self._explain(path, result, images, kind, Path(explain_dir))
            result.timings["explain"] = time.perf_counter() - t4

    def _score_image(
        self, path: Path, result: FileResult, progress: Callable[[float], None]
    ) -> tuple[list[Any], np.ndarray]:
        """One image: read, detect and cut, score (one stage after the other)."""
        t0 = time.perf_counter()
        crops = self._image_crops(path, result.timings)
        result.n_frames = 1
        progress(0.6)
        t1 = time.perf_counter()
        probs = self.score_crops(np.stack([c.image for c in crops])) if crops else np.zeros(0, np.float32)
        result.timings["infer"] = time.perf_counter() - t1
        result.timings.setdefault("detect", t1 - t0 - result.timings.get("decode", 0.0))
        return crops, probs

    def _image_crops(self, path: Path, timings: dict[str, float] | None = None) -> list[Any]:
        """Face crops of an image at the model's input size, cut as the detector's crop contract says."""
        from fakescope.data import media
        from fakescope.data.contract import crop_picture, face_in_crop
        from fakescope.data.faces import FaceCrop, extract_faces

        t0 = time.perf_counter()
        frame = media.Frame(index=0, timestamp=0.0, image=media.read_image(path))
        t1 = time.perf_counter()
        c = self.contract
        whole = face_in_crop(frame.image, self.face_detector)
        if whole is not None:
            _logger.info("image is a face crop: scoring it whole")
            crop = c.model_input(crop_picture(frame.image, whole, c))
            crops = [FaceCrop(0, 0.0, 0, tuple(whole.box), whole.score, crop, whole.landmarks)]
        else:
            crops = extract_faces(
                [frame],
                self.face_detector,
                size=c.cut_size,
                margin=c.margin,
                max_faces=self.max_faces,
                align=c.align,
                interpolation=c.interpolation,
            )
            for crop in crops:
                crop.image = c.model_input(crop.image)
        if timings is not None:
            timings["decode"], timings["detect"] = t1 - t0, time.perf_counter() - t1
        return crops

    def _video_crops(
        self, path: Path, timings: dict[str, float], progress: Callable[[float], None], *, score: bool
    ) -> tuple[list[Any], np.ndarray]:
        """The video pipeline: decoding (a thread) overlaps face detection, cutting and batched inference.

        Frames pass through a queue of :data:`QUEUE_FRAMES`, and each frame is dropped once its faces are cut,
        so memory holds a few frames whatever the video's length. Crops are the ones
        :func:`fakescope.data.faces.extract_faces` cuts from the same frames; track ids are linked at the end.
        ``timings`` gets the seconds spent decoding (in the thread), detecting and cutting, and inferring, plus
        ``n_frames``.
        """
        from fakescope.data.contract import CropContract, cut_face
        from fakescope.data.faces import FaceCrop, link_tracks

        c = self.contract
        cut = CropContract(size=c.cut_size, margin=c.margin, align=c.align, interpolation=c.interpolation)
        # ONNX Runtime scores while decoding goes on; eager torch's OpenMP threads slowed down ~3x next to the
        # decoder threads (2 cores), so torch scores once the frames are in (decoding still overlaps detection)
        stream = score and self.runtime == "onnx"
        feed = _FrameFeed(path, self)
        boxes: list[list[Any]] = []
        pending: list[Any] = []  # (frame, face, model input) not yet scored
        done: list[tuple[Any, Any, Any]] = []
        probs: list[np.ndarray] = []
        detect_s = infer_s = 0.0
        t_start = time.perf_counter()

        def flush() -> None:
            nonlocal infer_s
            t = time.perf_counter()
            probs.append(self.score_crops(np.stack([p[2] for p in pending])))
            infer_s += time.perf_counter() - t
            done.extend(pending)
            pending.clear()

        try:
            for n, frame in enumerate(feed, start=1):
                t = time.perf_counter()
                faces = self.face_detector.detect(frame.image)
                faces = faces[: self.max_faces] if self.max_faces is not None else faces
                boxes.append([f.box for f in faces])
                where = (frame.index, frame.timestamp, len(boxes) - 1)
                pending.extend((where, face, c.model_input(cut_face(frame.image, face, cut))) for face in faces)
                detect_s += time.perf_counter() - t
                del frame
                if stream and len(pending) >= min(STREAM_BATCH, self.batch_size):
                    flush()
                progress(min(0.9, 0.05 + 0.85 * n / self.num_frames))
            if score and pending:
                flush()
            done.extend(pending)
        finally:
            feed.close()
        ids = link_tracks(boxes)
        seen: dict[int, int] = {}  # frame position -> faces of that frame placed so far (in detection order)
        crops = []
        for (index, ts, pos), face, image in done:
            k = seen[pos] = seen.get(pos, -1) + 1
            crops.append(FaceCrop(index, ts, ids[pos][k], face.box, face.score, image, face.landmarks))
        timings.update(
            decode=feed.decode_s,
            detect=detect_s,
            infer=infer_s,
            wait=max(0.0, time.perf_counter() - t_start - detect_s - infer_s),
            n_frames=float(len(boxes)),
        )
        if not boxes:
            raise MediaError(path, "no frames could be decoded")
        return crops, (np.concatenate(probs) if probs else np.zeros(0, np.float32))

    def _explain(self, path: Path, result: FileResult, images: np.ndarray, kind: str, explain_dir: Path) -> None:
        from fakescope.explain import gradcam_heatmaps, plot_timeline, save_overlay

        out = explain_dir / _safe_stem(path)
        out.mkdir(parents=True, exist_ok=True)
        overlays: list[str] = []
        torch_model = self.loaded.get_torch_model()
        if torch_model is None:
            result.evidence["note"] = "Grad-CAM needs the PyTorch model; an .onnx file alone cannot be explained"
        else:
            heat = gradcam_heatmaps(torch_model, images, batch_size=min(self.batch_size, 16))
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
class _FrameFeed:
    """Decode a video's wanted frames in a thread, into a bounded queue; iterate to receive them in order.

    PyAV releases the GIL while FFmpeg decodes, so decoding runs alongside face detection and inference. The
    queue holds at most :data:`QUEUE_FRAMES` frames (the thread waits beyond it). An error of the decoder is
    raised by the iteration; :meth:`close` stops the thread early (a consumer that fails).

    A predictor with a budget of one thread (``threads=1``: each of ``predict --workers N`` on N cores) decodes in
    the caller's thread instead, one frame after the other: a second thread would run it past its budget, and
    the workers beside it already keep every core busy.
    """

    _END = object()

    def __init__(self, path: Path, predictor: Predictor) -> None:
        from fakescope.data.media import iter_frames

        self._frames = iter_frames(
            path,
            num_frames=predictor.num_frames,
            threads=predictor.threads,
            keyframes=predictor.sampling == "keyframes",
        )
        self._queue: queue.Queue[Any] = queue.Queue(maxsize=QUEUE_FRAMES)
        self._stop = threading.Event()
        self.decode_s = 0.0
        self._thread = threading.Thread(target=self._run, name="fakescope-decode", daemon=True)
        self.inline = predictor.threads == 1
        if not self.inline:
            self._thread.start()

    def _decoded(self) -> Any:
        """The decoder's frames, its time added to ``decode_s`` (in whichever thread iterates)."""
        while True:
            t = time.perf_counter()
            try:
                frame = next(self._frames)
            except StopIteration:
                return
            finally:
                self.decode_s += time.perf_counter() - t
            yield frame

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            for frame in self._decoded():
                if self._stop.is_set() or not self._put(frame):
                    return
            self._put(self._END)
        except BaseException as exc:  # handed to the consumer, which raises it
            self._put(exc)
        finally:
            self._frames.close()

    def __iter__(self) -> Any:
        if self.inline:
            yield from self._decoded()
            return
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item

    def close(self) -> None:
        """Stop the decoder thread and wait for it (inline decoding: close the decoder)."""
        self._stop.set()
        if self.inline:
            self._frames.close()
            return
        while self._thread.is_alive():
            try:
                self._queue.get_nowait()
            except queue.Empty:
                self._thread.join(0.05)


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

    torch_model = loaded.get_torch_model()
    if torch_model is None:
        raise ValueError("--adv-detector needs the PyTorch model (a checkpoint or a name), not an .onnx file")
    squeezer, _, _ = load_detectors(path, torch_model)
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
