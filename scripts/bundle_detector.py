"""Turn a training run's best checkpoint into the fp16 weights file shipped inside the package.

    .venv/bin/python scripts/bundle_detector.py RUN/best.safetensors src/fakescope/models/weights/NAME.safetensors

Prints the file's SHA-256 and size; the registration (``register_pretrained`` in the family file) records the
SHA-256 and the crop contract printed here. Uses the public API only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from fakescope.models import load_checkpoint, save_checkpoint
from fakescope.utils.download import sha256_file


def main() -> None:
    """Convert, then print what the registration needs."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("checkpoint", type=Path)
    ap.add_argument("out", type=Path)
    args = ap.parse_args()
    model, meta = load_checkpoint(args.checkpoint)
    keep = {k: meta[k] for k in ("threshold", "threshold_rule", "epoch", "val_metrics", "train", "config") if k in meta}
    path = save_checkpoint(model, args.out, dtype=torch.float16, source_checkpoint=args.checkpoint.name, **keep)
    path.with_suffix(".json").unlink(missing_ok=True)  # the model card documents it; no sidecar in the package
    report = {
        "file": str(path),
        "bytes": path.stat().st_size,
        "sha256": sha256_file(path),
        "threshold": meta.get("threshold"),
        "cfg": model.cfg.to_dict(),
        "val_metrics": meta.get("val_metrics"),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
