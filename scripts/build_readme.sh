#!/usr/bin/env bash
# Assemble README.md from the per-area sections in docs/readme/ (edit those, then run this).
set -euo pipefail
cd "$(dirname "$0")/.."
{
  for f in 00-head demo data faces models train evaluate adversarial predict serve scale; do
    cat "docs/readme/$f.md"; echo
  done
  cat docs/readme/99-tail.md
} > README.md
