#!/usr/bin/env bash
# One-command GPU check for issue 5 (two stages <= 1.5 s, end to end <= 5 s on an H100).
#
#   bash benchmarks/gpu_check.sh [--runs 3] [--models DIR] [--no-refine]
#
# Needs a Python environment with CUDA-enabled torch in which napari_livertumor imports
# (e.g. `pip install -e .` with a CUDA torch wheel); it uses ./.venv if present, else `python3`.
# Nothing is downloaded. Results: printed, and saved to $OUT/gpu_check.json when $OUT is set,
# else benchmarks/results/gpu_check.json.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=python3
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; fi
# Import from this checkout even when the package is not installed in that environment.
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
"$PY" -c "import torch, monai; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
exec "$PY" benchmarks/gpu_check.py "$@"
