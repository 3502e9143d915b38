"""ONNX export with a parity check, and an ONNX Runtime wrapper with the detector's call surface.

The exported graph keeps the detector contract: input ``image`` is ``B,3,S,S`` RGB in [0, 1] (normalisation is
inside the graph), output ``logit`` is ``B`` (``sigmoid`` of it is P(fake)); the batch axis is dynamic. The
detector's config, name and threshold are stored in the ONNX metadata under the key ``fakescope`` so that an
``.onnx`` file alone is enough to predict.
"""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fakescope.errors import CheckpointError
from fakescope.utils.io import atomic_write_bytes

_logger = logging.getLogger(__name__)

DEFAULT_OPSET = 17
PARITY_TOL = 1e-4
_META_KEY = "fakescope"


@dataclass(frozen=True)
class ParityReport:
    """Comparison of ONNX Runtime against PyTorch on the same inputs.

    Attributes:
        max_abs_diff_logit: max |ORT - torch| over the logits.
        max_abs_diff_prob: max |ORT - torch| over P(fake).
        n_inputs: images compared.
        tol: tolerance.
        ok: ``max_abs_diff_logit <= tol``.
    """

    max_abs_diff_logit: float
    max_abs_diff_prob: float
    n_inputs: int
    tol: float

    @property
    def ok(self) -> bool:
        """Whether the export is within tolerance."""
        return self.max_abs_diff_logit <= self.tol

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict."""
        return {
            "max_abs_diff_logit": self.max_abs_diff_logit,
            "max_abs_diff_prob": self.max_abs_diff_prob,
            "n_inputs": self.n_inputs,
            "tol": self.tol,
            "ok": self.ok,
        }


def export_onnx_bytes(
    model: Any, input_size: int | None = None, *, opset: int = DEFAULT_OPSET, metadata: dict[str, Any] | None = None
) -> bytes:
    """Export a detector to an ONNX model in memory (TorchScript exporter, dynamic batch).

    Args:
        model: a :class:`~fakescope.models.Detector` (``[0,1]`` images ``B,3,S,S`` -> logits ``B``).
        input_size: ``S`` (default ``model.cfg.input_size``).
        opset: ONNX opset version.
        metadata: stored as JSON under ``fakescope`` in the model's metadata (name, cfg, threshold).
    """
    import onnx
    import torch

    from fakescope.models.inference import eval_mode

    if input_size is None:
        input_size = int(model.cfg.input_size)
    dummy = torch.rand(2, 3, input_size, input_size, generator=torch.Generator().manual_seed(0))
    buf = io.BytesIO()
    with eval_mode(model), torch.no_grad():
        torch.onnx.export(
            model,
            (dummy,),
            buf,
            input_names=["image"],
            output_names=["logit"],
            dynamic_axes={"image": {0: "batch"}, "logit": {0: "batch"}},
            opset_version=opset,
            dynamo=False,
        )
    proto = onnx.load_from_string(buf.getvalue())
    if metadata:
        entry = proto.metadata_props.add()
        entry.key, entry.value = _META_KEY, json.dumps(metadata, default=str)
    return proto.SerializeToString()


def export_onnx(
    model: Any,
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
    metadata: dict[str, Any] | None = None,
    check: bool = True,
    tol: float = PARITY_TOL,
    n_check: int = 8,
    seed: int = 0,
) -> ParityReport | None:
    """Export ``model`` to ``out`` (written atomically) and, with ``check``, compare ORT with PyTorch.

    The file is written even when parity fails (the report says so); callers decide what to do.

    Returns:
        The parity report, or None without ``check``.
    """
    cfg = getattr(model, "cfg", None)
    meta = {"model": getattr(cfg, "name", type(model).__name__), "threshold": 0.5}
    if cfg is not None:
        meta["cfg"] = cfg.to_dict()
    meta.update(metadata or {})
    data = export_onnx_bytes(model, opset=opset, metadata=meta)
    atomic_write_bytes(out, data)
    if not check:
        return None
    return check_parity(model, OnnxDetector(data), n=n_check, seed=seed, tol=tol)


def check_parity(
    model: Any, onnx_model: OnnxDetector, *, n: int = 8, seed: int = 0, tol: float = PARITY_TOL
) -> ParityReport:
    """Max |difference| of logits and P(fake) between PyTorch and ONNX Runtime on ``n`` seeded random images.

    Inputs are uniform noise in [0, 1] plus smooth random images (closer to faces than noise), sent as one batch
    so the dynamic batch axis is exercised too.
    """
    import torch

    from fakescope.models.inference import eval_mode

    size = onnx_model.input_size
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(max(1, n // 2), 3, size, size, generator=g)
    smooth = torch.nn.functional.interpolate(
        torch.rand(max(1, n - n // 2), 3, 8, 8, generator=g), size=(size, size), mode="bilinear", align_corners=False
    )
    x = torch.cat([noise, smooth])
    with eval_mode(model), torch.no_grad():
        ref = model(x).reshape(-1).double().numpy()
    got = onnx_model(x).reshape(-1).double().numpy()
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    return ParityReport(
        max_abs_diff_logit=float(np.max(np.abs(ref - got))),
        max_abs_diff_prob=float(np.max(np.abs(sig(ref) - sig(got)))),
        n_inputs=len(x),
        tol=tol,
    )


class OnnxDetector:
    """An ONNX Runtime session that behaves like a detector: ``__call__(x) -> logits``, ``predict_proba(x)``.

    Args:
        source: path of an ``.onnx`` file or the serialised model bytes.
        num_threads: intra-op threads (default: all cores of the machine).
    """

    def __init__(self, source: str | Path | bytes, num_threads: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = num_threads or os.cpu_count() or 1
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if isinstance(source, str | Path):
            path = Path(source)
            if not path.is_file():
                raise CheckpointError(f"{path}: ONNX model not found")
            data: str | bytes = str(path)
        else:
            data = source
        try:
            self.session = ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise CheckpointError(
                f"{source if isinstance(source, str | Path) else '<bytes>'}: not a loadable ONNX model ({exc})"
            ) from exc
        raw = self.session.get_modelmeta().custom_metadata_map.get(_META_KEY)
        self.meta: dict[str, Any] = json.loads(raw) if raw else {}
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        shape = inp.shape
        size = shape[-1] if isinstance(shape[-1], int) else self.meta.get("cfg", {}).get("input_size", 224)
        self.input_size = int(size)
        self.training = False

    @property
    def name(self) -> str:
        """Detector name stored in the metadata."""
        return str(self.meta.get("model", "onnx"))

    def eval(self) -> OnnxDetector:
        """No-op (API parity with ``nn.Module``)."""
        return self

    def __call__(self, x: Any) -> Any:
        """Logits ``B`` for [0, 1] images ``B,3,S,S`` (torch tensor in -> torch tensor out; numpy -> numpy)."""
        is_torch = type(x).__module__.startswith("torch")
        arr = x.detach().cpu().numpy() if is_torch else np.asarray(x)
        out = self.session.run(None, {self.input_name: np.ascontiguousarray(arr, dtype=np.float32)})[0].reshape(-1)
        if is_torch:
            import torch

            return torch.from_numpy(out)
        return out

    def predict_proba(self, x: Any) -> Any:
        """P(fake) ``B``."""
        logits = self(x)
        if type(logits).__module__.startswith("torch"):
            import torch

            return torch.sigmoid(logits)
        return 1.0 / (1.0 + np.exp(-logits))
