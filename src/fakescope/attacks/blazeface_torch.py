"""A differentiable PyTorch port of a BlazeFace ``.tflite`` model, built from the file at run time.

The face-detector attack (:mod:`fakescope.attacks.face_detector`) needs gradients of the face score with respect
to the input pixels; the TensorFlow Lite runtime the pipeline uses (:class:`fakescope.data._blazeface.BlazeFaceModel`)
has none. This module reads the graph (operators and their options) from the ``.tflite`` flatbuffer with the
schema bindings that ship inside ``ai-edge-litert`` (no extra dependency) and the constant tensors from the TFLite
interpreter itself: run once with ``experimental_preserve_all_tensors`` and no delegate, the interpreter has
dequantised the float16 weights and densified the sparse ones of the full-range model (its ``DENSIFY`` op), so
every weight is read back exactly as the runtime uses it. Nothing is pickled, nothing is written to disk.

The port executes the operators of the graph in order on NCHW tensors. It covers what MediaPipe's two BlazeFace
models use: ``CONV_2D``, ``DEPTHWISE_CONV_2D``, ``PAD``, ``ADD``, ``RELU``, ``MAX_POOL_2D``, ``RESIZE_BILINEAR``,
``DEPTH_TO_SPACE``, ``RESHAPE`` and ``CONCATENATION`` (plus the constant-only ``DEQUANTIZE``/``DENSIFY``). It
raises ``NotImplementedError`` on anything else. ``tests/test_face_detector_attack.py`` checks its raw outputs
against the TFLite runtime's on real frames.

Weights: Google's MediaPipe face-detection models (Apache-2.0), see ``fakescope.data._blazeface``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["BlazeFaceTorch"]

_logger = logging.getLogger(__name__)

_CONST_OPS = ("DEQUANTIZE", "DENSIFY")
_SUPPORTED = (
    "CONV_2D",
    "DEPTHWISE_CONV_2D",
    "PAD",
    "ADD",
    "RELU",
    "MAX_POOL_2D",
    "RESIZE_BILINEAR",
    "DEPTH_TO_SPACE",
    "RESHAPE",
    "CONCATENATION",
)


def _activation(x: torch.Tensor, code: int) -> torch.Tensor:
    """TFLite's fused activation (``ActivationFunctionType``)."""
    if code == 0:
        return x
    if code == 1:
        return F.relu(x)
    if code == 2:
        return x.clamp(-1.0, 1.0)
    if code == 3:
        return x.clamp(0.0, 6.0)
    raise NotImplementedError(f"fused activation {code}")


def _same_pad(size: int, kernel: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow's ``SAME`` padding along one axis: ``(before, after)``, the extra pixel after."""
    out = -(-size // stride)
    total = max((out - 1) * stride + (kernel - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


def _pad_same(x: torch.Tensor, kh: int, kw: int, opts: Any) -> torch.Tensor:
    if opts.padding != 0:  # 0 = SAME, 1 = VALID
        return x
    top, bottom = _same_pad(x.shape[2], kh, opts.strideH, getattr(opts, "dilationHFactor", 1) or 1)
    left, right = _same_pad(x.shape[3], kw, opts.strideW, getattr(opts, "dilationWFactor", 1) or 1)
    if top or bottom or left or right:
        x = F.pad(x, (left, right, top, bottom))
    return x


def _to_nchw_axis(axis: int, ndim: int) -> int:
    """An NHWC axis index of a 4-D tensor as the matching NCHW axis."""
    axis = axis % ndim
    return {0: 0, 1: 2, 2: 3, 3: 1}[axis] if ndim == 4 else axis


class BlazeFaceTorch(nn.Module):
    """A ``.tflite`` BlazeFace model as a :class:`torch.nn.Module`.

    ``forward`` takes ``N,3,S,S`` input already scaled as the model expects ([-1, 1], see
    :meth:`fakescope.data._blazeface.BlazeFaceModel.detect_square`) and returns ``(raw_boxes N,A,16,
    raw_scores N,A)``: the same tensors as the TFLite outputs (score logits before the sigmoid).

    Args:
        model_path: the ``.tflite`` file.
    """

    def __init__(self, model_path: str | Path) -> None:
        super().__init__()
        from ai_edge_litert import schema_py_generated as schema
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        buf = Path(model_path).read_bytes()
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(buf, 0))
        graph = model.subgraphs[0]
        names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
        ops = []
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            ops.append((names[max(int(code.builtinCode), int(code.deprecatedBuiltinCode))], op))
        unknown = sorted({n for n, _ in ops if n not in _SUPPORTED + _CONST_OPS})
        if unknown:
            raise NotImplementedError(f"{model_path}: operators {unknown} are not ported")

        # constants: tensors with data, and what DEQUANTIZE / DENSIFY make of them
        const = {i for i, t in enumerate(graph.tensors) if t.buffer and model.buffers[t.buffer].data is not None}
        for name, op in ops:
            if name in _CONST_OPS and all(int(i) in const for i in op.inputs):
                const.update(int(o) for o in op.outputs)
        needed = {int(i) for name, op in ops if name in _SUPPORTED for i in op.inputs if int(i) in const}
        interp = Interpreter(
            model_content=buf,
            experimental_preserve_all_tensors=True,
            experimental_op_resolver_type=OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES,
        )
        interp.allocate_tensors()
        inp = interp.get_input_details()[0]
        interp.set_tensor(inp["index"], np.zeros(inp["shape"], np.float32))
        interp.invoke()
        self._consts: dict[int, np.ndarray] = {i: np.array(interp.get_tensor(i)) for i in sorted(needed)}
        del interp

        self.input_index = int(graph.inputs[0])
        self.input_size = int(graph.tensors[self.input_index].shape[1])
        self.output_indices = [int(i) for i in graph.outputs]
        self._out_shapes = {i: [int(s) for s in t.shape] for i, t in enumerate(graph.tensors) if t.shape is not None}
        self._program: list[tuple[str, list[int], list[int], Any]] = [
            (name, [int(i) for i in op.inputs], [int(o) for o in op.outputs], op.builtinOptions)
            for name, op in ops
            if name in _SUPPORTED
        ]
        self._params = nn.ParameterDict()
        for name, ins, _, _ in self._program:
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                w = torch.from_numpy(self._consts[ins[1]].astype(np.float32))
                if name == "CONV_2D":  # O,H,W,I -> O,I,H,W
                    w = w.permute(0, 3, 1, 2)
                else:  # 1,H,W,C*M -> C*M,1,H,W
                    w = w.permute(3, 0, 1, 2)
                self._params[f"w{ins[1]}"] = nn.Parameter(w.contiguous(), requires_grad=False)
                if len(ins) > 2 and ins[2] >= 0:
                    b = torch.from_numpy(self._consts[ins[2]].astype(np.float32))
                    self._params[f"b{ins[2]}"] = nn.Parameter(b, requires_grad=False)
        # the two outputs: boxes (16 wide) and scores (1 wide)
        self._boxes_out, self._scores_out = sorted(self.output_indices, key=lambda i: -self._out_shapes[i][-1])

    def _value(self, i: int, env: dict[int, torch.Tensor], ref: torch.Tensor) -> torch.Tensor:
        if i in env:
            return env[i]
        c = torch.from_numpy(self._consts[i].astype(np.float32)).to(ref.device)
        if c.ndim == 4:
            c = c.permute(0, 3, 1, 2)
        elif c.ndim == 1 and ref.ndim == 4:
            c = c.view(1, -1, 1, 1)
        return c

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw outputs ``(boxes N,A,16, score logits N,A)`` for ``N,3,S,S`` input in [-1, 1]."""
        env: dict[int, torch.Tensor] = {self.input_index: x}
        for name, ins, outs, o in self._program:
            a = env[ins[0]]
            if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
                w = self._params[f"w{ins[1]}"]
                b = self._params[f"b{ins[2]}"] if len(ins) > 2 and ins[2] >= 0 else None
                a = _pad_same(a, w.shape[2], w.shape[3], o)
                dil = (o.dilationHFactor or 1, o.dilationWFactor or 1)
                groups = 1 if name == "CONV_2D" else a.shape[1]
                y = F.conv2d(a, w, b, stride=(o.strideH, o.strideW), dilation=dil, groups=groups)
                y = _activation(y, o.fusedActivationFunction)
            elif name == "PAD":
                p = self._consts[ins[1]].astype(int)  # NHWC rows of (before, after)
                if a.ndim == 4:
                    p = p[[0, 3, 1, 2]]
                y = F.pad(a, tuple(int(v) for row in p[::-1] for v in row))
            elif name == "ADD":
                y = _activation(a + self._value(ins[1], env, a), o.fusedActivationFunction)
            elif name == "RELU":
                y = F.relu(a)
            elif name == "MAX_POOL_2D":
                a = _pad_same(a, o.filterHeight, o.filterWidth, o)
                y = F.max_pool2d(a, (o.filterHeight, o.filterWidth), (o.strideH, o.strideW))
                y = _activation(y, o.fusedActivationFunction)
            elif name == "RESIZE_BILINEAR":
                size = tuple(int(v) for v in self._consts[ins[1]])
                if o.alignCorners or not o.halfPixelCenters:
                    raise NotImplementedError("RESIZE_BILINEAR without half-pixel centres")
                y = F.interpolate(a, size=size, mode="bilinear", align_corners=False)
            elif name == "DEPTH_TO_SPACE":
                bs = o.blockSize
                n, c, h, w = a.shape
                # TFLite's channel order is (block row, block col, channel)
                y = a.view(n, bs, bs, c // (bs * bs), h, w).permute(0, 3, 4, 1, 5, 2)
                y = y.reshape(n, c // (bs * bs), h * bs, w * bs)
            elif name == "RESHAPE":
                if a.ndim == 4:
                    a = a.permute(0, 2, 3, 1)
                y = a.reshape(a.shape[0], *self._out_shapes[outs[0]][1:])
            elif name == "CONCATENATION":
                vals = [self._value(i, env, a) for i in ins]
                y = _activation(torch.cat(vals, dim=_to_nchw_axis(o.axis, a.ndim)), o.fusedActivationFunction)
            else:  # pragma: no cover - guarded in __init__
                raise NotImplementedError(name)
            env[outs[0]] = y
        boxes = env[self._boxes_out]
        scores = env[self._scores_out]
        return boxes.reshape(boxes.shape[0], -1, boxes.shape[-1]), scores.reshape(scores.shape[0], -1)
