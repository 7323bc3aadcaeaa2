#!/usr/bin/env bash
# One-command GPU check for issue 5 (two stages <= 1.5 s, end to end <= 5 s on an H100).
#
#   bash benchmarks/gpu_check.sh [--runs 3] [--models DIR] [--no-refine] [--keep]
#
# Needs a Python environment with CUDA-enabled torch in which napari_livertumor imports
# (e.g. `pip install -e .` with a CUDA torch wheel). The Python is $PY when set
# (`PY=/opt/x/bin/python bash benchmarks/gpu_check.sh`), else ./.venv/bin/python if present,
# else `python3`. Nothing is downloaded. Results: printed, and saved to $OUT/gpu_check.json
# when $OUT is set, else benchmarks/results/gpu_check.json.
set -euo pipefail
# a relative PY given from elsewhere still names the same file after the cd below
if [[ "${PY:-}" == */* && "${PY:-}" != /* ]]; then PY="$PWD/$PY"; fi
cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ]; then
    PY=python3
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
fi
echo "python: $PY"
if ! command -v "$PY" >/dev/null 2>&1; then
    echo "gpu_check: $PY not found; set PY to a Python with CUDA torch and MONAI" >&2
    exit 2
fi
# torch and MONAI present? (found, not imported: a full `import monai` costs many seconds)
missing=$("$PY" -c "import importlib.util as u; print(', '.join(m for m in ('torch', 'monai') if u.find_spec(m) is None))" 2>/dev/null) || missing="torch, monai"
if [ -n "$missing" ]; then
    echo "gpu_check: $PY has no $missing; set PY to a Python with CUDA torch and MONAI" >&2
    exit 2
fi
# Import from this checkout even when the package is not installed in that environment.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
# versions: torch imported, MONAI's read from its package metadata (not imported)
"$PY" - <<'EOF'
import importlib.metadata

import torch

try:
    monai = importlib.metadata.version("monai")
except importlib.metadata.PackageNotFoundError:
    monai = "(version unknown)"
print("torch", torch.__version__, "cuda", torch.version.cuda,
      "available", torch.cuda.is_available(), "monai", monai)
EOF
exec "$PY" benchmarks/gpu_check.py "$@"
