"""BlazeFace (MediaPipe face detection) on the TensorFlow Lite runtime, without MediaPipe.

Bazarevsky et al., "BlazeFace: Sub-millisecond Neural Face Detection on Mobile GPUs", CVPR-W 2019.
The ``.tflite`` files are Google's MediaPipe face-detection models (Apache-2.0), fetched from Google's public model
storage and verified by SHA-256. Pre- and post-processing follow MediaPipe's ``face_detection_*_range.pbtxt``
graphs: the frame is letterboxed (aspect ratio kept, black padding) to the model input and scaled to [-1, 1];
SSD anchors come from ``SsdAnchorsCalculator`` options; boxes and 6 keypoints are decoded as in
``TensorsToDetectionsCalculator`` (x, y, w, h order, scaled by the input size, anchors of fixed size 1);
overlapping boxes are merged with MediaPipe's weighted non-maximum suppression.

Keypoints, in MediaPipe order: right eye, left eye, nose tip, mouth centre, right ear tragion, left ear tragion
(right/left of the person, so the "right eye" is usually on the image's left).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

BASE_URL = "https://storage.googleapis.com/mediapipe-assets/"


@dataclass(frozen=True)
class BlazeFaceSpec:
    """One BlazeFace variant: its file, checksum and the MediaPipe graph options that decode its output."""

    name: str
    filename: str
    sha256: str
    input_size: int
    strides: tuple[int, ...]
    anchors_per_layer: int  # 2 = aspect ratio 1.0 plus the interpolated scale; 1 = aspect ratio only
    min_score: float
    min_suppression_iou: float = 0.3

    @property
    def url(self) -> str:
        """Public download address."""
        return BASE_URL + self.filename


SPECS: dict[str, BlazeFaceSpec] = {
    "short": BlazeFaceSpec(
        name="short",
        filename="face_detection_short_range.tflite",
        sha256="bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
        input_size=128,
        strides=(8, 16, 16, 16),
        anchors_per_layer=2,
        min_score=0.5,
    ),
    "full": BlazeFaceSpec(
        name="full",
        filename="face_detection_full_range_sparse.tflite",
        sha256="2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1",
        input_size=192,
        strides=(4,),
        anchors_per_layer=1,
        min_score=0.6,
    ),
}


def generate_anchors(spec: BlazeFaceSpec) -> np.ndarray:
    """SSD anchor centres ``N,2`` (x, y in [0, 1]) as MediaPipe's ``SsdAnchorsCalculator`` lays them out.

    With ``fixed_anchor_size: true`` every anchor has width and height 1, so only centres matter; consecutive
    layers with the same stride share one grid, each contributing ``anchors_per_layer`` anchors per cell.
    """
    out: list[np.ndarray] = []
    layer = 0
    n_layers = len(spec.strides)
    while layer < n_layers:
        stride = spec.strides[layer]
        per_cell = 0
        while layer < n_layers and spec.strides[layer] == stride:
            per_cell += spec.anchors_per_layer
            layer += 1
        grid = int(np.ceil(spec.input_size / stride))
        ys, xs = np.meshgrid((np.arange(grid) + 0.5) / grid, (np.arange(grid) + 0.5) / grid, indexing="ij")
        centres = np.stack([xs.ravel(), ys.ravel()], axis=1)
        out.append(np.repeat(centres, per_cell, axis=0))
    return np.concatenate(out, axis=0).astype(np.float32)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, spec: BlazeFaceSpec, min_score: float):
    """Decode model outputs into boxes (x1, y1, x2, y2 in [0,1] of the input square), scores and keypoints.

    Returns:
        ``(boxes N,4, scores N, keypoints N,6,2)`` for anchors scoring at least ``min_score``.
    """
    logits = np.clip(raw_scores.reshape(-1).astype(np.float64), -100.0, 100.0)
    scores = 1.0 / (1.0 + np.exp(-logits))
    keep = np.nonzero(scores >= min_score)[0]
    raw = raw_boxes.reshape(-1, raw_boxes.shape[-1])[keep]
    anc = anchors[keep]
    s = float(spec.input_size)
    cx = raw[:, 0] / s + anc[:, 0]
    cy = raw[:, 1] / s + anc[:, 1]
    w = raw[:, 2] / s
    h = raw[:, 3] / s
    boxes = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    kp = raw[:, 4:16].reshape(-1, 6, 2) / s + anc[:, None, :]
    return boxes, scores[keep], kp


def _iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)


def weighted_nms(boxes: np.ndarray, scores: np.ndarray, keypoints: np.ndarray, iou_threshold: float = 0.3):
    """MediaPipe's weighted NMS: each cluster of overlapping boxes becomes their score-weighted mean.

    The cluster keeps the highest score; boxes and keypoints are averaged with the scores as weights.

    Returns:
        ``(boxes M,4, scores M, keypoints M,6,2)`` sorted by score, highest first.
    """
    order = np.argsort(-scores, kind="stable")
    boxes, scores, keypoints = boxes[order], scores[order], keypoints[order]
    remaining = np.ones(len(scores), dtype=bool)
    out_b, out_s, out_k = [], [], []
    for i in range(len(scores)):
        if not remaining[i]:
            continue
        idx = np.nonzero(remaining)[0]
        overlap = _iou(boxes[i], boxes[idx]) > iou_threshold
        members = idx[overlap]
        remaining[members] = False
        w = scores[members][:, None]
        out_b.append((boxes[members] * w).sum(0) / w.sum())
        out_k.append((keypoints[members] * w[:, :, None]).sum(0) / w.sum())
        out_s.append(scores[i])
    if not out_s:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 6, 2), np.float32)
    return np.stack(out_b), np.asarray(out_s, dtype=np.float32), np.stack(out_k)


class BlazeFaceModel:
    """One BlazeFace ``.tflite`` model run with ``ai_edge_litert``; detects in a square RGB uint8 tile."""

    def __init__(self, model_path: str | Path, spec: BlazeFaceSpec, num_threads: int = 1) -> None:
        from ai_edge_litert.interpreter import Interpreter

        self.spec = spec
        self._interp = Interpreter(model_path=str(model_path), num_threads=num_threads)
        self._interp.allocate_tensors()
        inp = self._interp.get_input_details()[0]
        shape = tuple(int(x) for x in inp["shape"])
        if shape != (1, spec.input_size, spec.input_size, 3):
            raise ValueError(f"{model_path}: input shape {shape} does not match BlazeFace {spec.name}")
        self._input = inp["index"]
        outs = sorted(self._interp.get_output_details(), key=lambda d: int(d["shape"][-1]), reverse=True)
        self._out_boxes, self._out_scores = outs[0]["index"], outs[1]["index"]
        self.anchors = generate_anchors(spec)
        if int(outs[0]["shape"][1]) != len(self.anchors):
            raise ValueError(f"{model_path}: {outs[0]['shape'][1]} outputs, expected {len(self.anchors)} anchors")

    def detect_square(self, tile: np.ndarray, min_score: float | None = None):
        """Detect faces in a ``S,S,3`` uint8 RGB tile already resized to the model input.

        Returns:
            ``(boxes N,4, scores N, keypoints N,6,2)`` in [0,1] tile coordinates, before NMS.
        """
        x = tile.astype(np.float32)[None] * (2.0 / 255.0) - 1.0
        self._interp.set_tensor(self._input, x)
        self._interp.invoke()
        raw_boxes = self._interp.get_tensor(self._out_boxes)
        raw_scores = self._interp.get_tensor(self._out_scores)
        return decode(
            raw_boxes, raw_scores, self.anchors, self.spec, self.spec.min_score if min_score is None else min_score
        )

    def close(self) -> None:
        """Drop the interpreter."""
        self._interp = None
