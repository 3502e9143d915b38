"""fakescope: tell real faces from deepfakes, and stress-test the detectors with adversarial attacks.

Labels are ``0 = real, 1 = fake`` everywhere; scores are always P(fake), named ``fake_prob``.

The public API is re-exported lazily so that ``import fakescope`` (and ``fakescope --help``) stays fast and
never imports torch or touches the disk.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: The detector used when none is named (``predict``, ``serve``): the one place it is defined. A panel of the
#: bundled DFDC MobileNetV2 and MesoNet's Face2Face MesoInception-4, both shipped in the package (see
#: ``fakescope/models/weights/MODEL_CARD.md`` for why).
DEFAULT_DETECTOR = "panel.dfdc_f2f"

_LAZY = {
    "create_detector": "fakescope.models",
    "list_detectors": "fakescope.models",
    "load_checkpoint": "fakescope.models",
    "save_checkpoint": "fakescope.models",
    "create_attack": "fakescope.attacks",
    "list_attacks": "fakescope.attacks",
    "FakescopeError": "fakescope.errors",
    "MediaError": "fakescope.errors",
}

__all__ = ["DEFAULT_DETECTOR", "__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'fakescope' has no attribute {name!r}")
