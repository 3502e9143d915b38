"""The Attack base class: wraps a fakescope Detector for ART, seeds ART's randomness and enforces the threat model."""

from __future__ import annotations

import contextlib
import logging
import random
from collections.abc import Iterator
from fractions import Fraction
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from fakescope.models.inference import eval_mode

_logger = logging.getLogger(__name__)

Norm = Literal["linf", "l2"]


def parse_eps(text: str | float | list[float] | tuple[float, ...]) -> list[float]:
    """Parse budgets such as ``"2/255,4/255,0.03"`` (fractions or decimals, comma separated) into floats.

    Raises:
        ValueError: a part is neither a fraction nor a number, or is negative.
    """
    if isinstance(text, int | float):
        return [float(text)]
    if isinstance(text, list | tuple):
        return [float(t) for t in text]
    out = []
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        try:
            value = float(Fraction(part))
        except (ValueError, ZeroDivisionError) as exc:
            raise ValueError(f"cannot read epsilon {part!r}; write it like 8/255 or 0.031") from exc
        if value < 0:
            raise ValueError(f"epsilon must be >= 0, got {part!r}")
        out.append(value)
    if not out:
        raise ValueError(f"no epsilon in {text!r}")
    return out


def format_eps(eps: float) -> str:
    """``8/255`` when ``eps`` is a whole number of 255ths, else the decimal."""
    k = eps * 255
    return f"{round(k)}/255" if abs(k - round(k)) < 1e-6 else f"{eps:g}"


class TwoLogit(nn.Module):
    """Present a one-logit detector as a two-class classifier: logits ``[0, z]``, so softmax = ``[1 - p, p]``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``B,2`` logits for [0, 1] images ``B,3,H,W``."""
        z = self.model(x).reshape(-1)
        return torch.stack([torch.zeros_like(z), z], dim=1)


@contextlib.contextmanager
def seeded(seed: int) -> Iterator[torch.Generator]:
    """Seed the global RNGs ART draws from (Python, NumPy, torch) for the block, then restore their state.

    ART's random starts and Square Attack use the global generators; this keeps their draws reproducible without
    leaking the seed into the caller's randomness.
    """
    py_state, np_state = random.getstate(), np.random.get_state()  # noqa: NPY002
    with torch.random.fork_rng(devices=[]):
        random.seed(seed)
        np.random.seed(seed % (2**32))  # noqa: NPY002 - ART reads the legacy global state
        torch.manual_seed(seed)
        try:
            yield torch.Generator().manual_seed(seed)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)  # noqa: NPY002


def art_classifier(
    module: nn.Module,
    input_size: int,
    device: torch.device,
    preprocessing_defences: Any = None,
) -> Any:
    """An ART ``PyTorchClassifier`` over a module that outputs ``B,2`` logits, clip values (0, 1)."""
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=module,
        loss=nn.CrossEntropyLoss(),
        input_shape=(3, input_size, input_size),
        nb_classes=2,
        clip_values=(0.0, 1.0),
        preprocessing_defences=preprocessing_defences,
        device_type="gpu" if device.type == "cuda" else "cpu",
    )


class Attack:
    """An adversarial attack with an explicit threat model, callable as ``attack(x, y) -> x_adv``.

    Subclasses implement :meth:`_generate` on NumPy arrays with ART and take their own keyword parameters in
    :meth:`_configure` (the constructor passes them on). This class handles devices, dtypes, train/eval
    mode, seeding (call ``k`` of an attack uses ``seed + k``: reproducible runs, fresh noise per batch), and a final
    projection onto the threat model, so ``||x_adv - x|| <= eps`` and ``0 <= x_adv <= 1`` always hold exactly.

    Attributes:
        name: registered name.
        norm: ``"linf"`` or ``"l2"``.
        eps: budget in [0, 1] pixel units (L-inf) or the L2 radius.
        seed: base seed.
        batch_size: images per ART call (default :attr:`default_batch_size`).
    """

    name: str = "attack"
    norm: Norm = "linf"
    default_batch_size: int = 64

    def __init__(
        self, model: nn.Module, eps: float, seed: int = 0, batch_size: int | None = None, **params: Any
    ) -> None:
        self.model = model
        self.eps = float(eps)
        self.seed = int(seed)
        self.batch_size = int(batch_size if batch_size is not None else self.default_batch_size)
        self.calls = 0
        size = getattr(getattr(model, "cfg", None), "input_size", None)
        self.input_size = int(size) if size is not None else None
        self._configure(**params)

    def _configure(self, **params: Any) -> None:
        """Check and store the attack's own keyword parameters (``steps``...); subclasses declare them here.

        Raises:
            TypeError: a parameter the attack does not take.
        """
        if params:
            raise TypeError(f"{type(self).__name__} takes no parameters {sorted(params)}")

    def describe(self) -> dict[str, Any]:
        """The threat model and parameters, for reports."""
        params = {k: v for k, v in vars(self).items() if isinstance(v, int | float | str | bool) and k != "calls"}
        return {"attack": self.name, "norm": self.norm, **params}

    def wrapped(self) -> nn.Module:
        """The module ART attacks (``B,2`` logits); adaptive attacks override it to include a defence."""
        return TwoLogit(self.model)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Adversarial versions of ``x`` (``B,3,H,W`` in [0, 1]) against the true labels ``y`` (``B``, 0/1)."""
        return self.generate(x, y)

    def generate(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """See :meth:`__call__`. The model's train/eval mode is restored afterwards; ART attacks in eval mode."""
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected images B,3,H,W, got shape {tuple(x.shape)}")
        seed = self.seed + self.calls
        self.calls += 1
        if self.eps == 0 or x.shape[0] == 0:
            return x.detach().clone()
        device = x.device
        x_np = x.detach().float().cpu().numpy().astype(np.float32)
        y_np = np.asarray(y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else y).reshape(-1).astype(int)
        onehot = np.eye(2, dtype=np.float32)[y_np]
        size = x_np.shape[-1]
        with eval_mode(self.model), seeded(seed) as gen:
            x_adv = self._generate(x_np, onehot, size, _model_device(self.model), gen)
        out = self.project(torch.from_numpy(np.asarray(x_adv, dtype=np.float32)), torch.from_numpy(x_np))
        return out.to(device=device, dtype=x.dtype)

    def project(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Project ``x_adv`` onto the eps-ball around ``x`` (in this attack's norm) and onto [0, 1]."""
        delta = x_adv - x
        if self.norm == "linf":
            delta = delta.clamp(-self.eps, self.eps)
        else:
            norms = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
            delta = delta * (self.eps / norms).clamp(max=1.0).view(-1, 1, 1, 1)
        return (x + delta).clamp(0.0, 1.0)

    def _generate(
        self, x: np.ndarray, y: np.ndarray, size: int, device: torch.device, generator: torch.Generator
    ) -> np.ndarray:
        raise NotImplementedError

    def _run_art(
        self,
        attack_cls: type,
        x: np.ndarray,
        y: np.ndarray,
        size: int,
        device: torch.device,
        preprocessing_defences: Any = None,
        **art_kwargs: Any,
    ) -> np.ndarray:
        """Run the ART evasion attack ``attack_cls`` on :meth:`wrapped` under this attack's threat model.

        The classifier is :func:`art_classifier` over :meth:`wrapped`; ``norm``, ``eps`` and ``batch_size`` come
        from this attack, and ``verbose=False`` is passed to attacks that take it.

        Args:
            attack_cls: an ART evasion attack class (``ProjectedGradientDescent``, ``SquareAttack``...).
            x: images ``B,3,S,S`` in [0, 1], float32.
            y: one-hot true labels ``B,2``.
            size: the side ``S``.
            device: the model's device.
            preprocessing_defences: ART preprocessors placed in front of the model (EoT chains...).
            **art_kwargs: the attack's other parameters (``eps_step``, ``max_iter``, ``num_random_init``...).

        Returns:
            The adversarial images ``B,3,S,S`` as ART returns them (projected afterwards by :meth:`generate`).
        """
        clf = art_classifier(self.wrapped(), size, device, preprocessing_defences=preprocessing_defences)
        if "verbose" in getattr(attack_cls, "attack_params", ()):
            art_kwargs.setdefault("verbose", False)
        norm = np.inf if self.norm == "linf" else 2
        attack = attack_cls(clf, norm=norm, eps=self.eps, batch_size=self.batch_size, **art_kwargs)
        return attack.generate(x=x, y=y)


def _model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")
