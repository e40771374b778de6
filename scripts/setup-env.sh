#!/usr/bin/env bash
# Create (or reuse) the virtual environment .venv and install odernn into it.
# torch is pinned to 2.13.0 here, and only here: that release is a CPU wheel on this
# machine's disk, while an unpinned torch would pull a multi-GB CUDA build. The
# package itself keeps a loose torch range (pyproject.toml) for users elsewhere.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
[ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "torch==2.13.0"
"$VENV/bin/python" -m pip install --quiet -e ".[dev]" "torch==2.13.0"
# Compile the fused scans' C++ walks once now (cached; about 20 s). Where no compiler is present this prints
# one line and the scans use their Python walks.
"$VENV/bin/python" -c "from odernn.kernels import main; raise SystemExit(main())"
