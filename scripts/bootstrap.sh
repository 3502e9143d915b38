#!/usr/bin/env bash
# Create (or reuse) .venv and install fakescope with everything the demo and the tests need.
# Works on a fresh machine that reaches only the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade "pip>=25.1"
# torch/torchvision: the pair that imports on this kind of machine (see README "Installation").
.venv/bin/python -m pip install -q "torch==2.14.1" "torchvision==0.29.1" -e ".[serve,ray]" --group dev
