#!/usr/bin/env bash
# Create (or reuse) a Python virtualenv with opentiva 1.1.2 for the Ketaflow benchmark.
#
# Idempotent: re-running reuses the venv and skips the install when opentiva 1.1.2
# already imports. Needs python3 (with the venv module), access to PyPI, and a C
# compiler plus Python headers (opentiva has no wheels on PyPI; it is compiled).
#
# opentiva's sdist ships a pre-generated pkpd.c that does not compile on Python >= 3.11
# (it includes longintrepr.h). Installing Cython etc. first and then building opentiva
# from source without build isolation makes pip regenerate the C file from pkpd.pyx
# with the installed (current) Cython.
set -euo pipefail

VENV="${KETAFLOW_BENCH_VENV:-/work/main/target/bench-venv}"
OPENTIVA_VERSION="1.1.2"
PY="$VENV/bin/python"

log() { echo "[opentiva setup] $*"; }

if [ -x "$PY" ]; then
    log "reusing virtualenv $VENV"
else
    log "creating virtualenv $VENV"
    mkdir -p "$(dirname "$VENV")"
    python3 -m venv "$VENV"
fi

# Fast path: nothing to do if the right opentiva is already importable.
if "$PY" - "$OPENTIVA_VERSION" <<'PYEOF' 2>/dev/null
import sys
from importlib.metadata import version
import opentiva.ketamine, opentiva.pump  # noqa: F401  (compiled pkpd module must load)
sys.exit(0 if version("opentiva") == sys.argv[1] else 1)
PYEOF
then
    log "opentiva $OPENTIVA_VERSION already installed in $VENV; nothing to do"
    exit 0
fi

# opentiva is published as an sdist only (no wheels), so building it needs a C
# compiler and the Python headers. Fail early with a clear message instead of
# a long compiler traceback.
if ! command -v "${CC:-cc}" >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
    log "error: no C compiler found (cc/gcc); opentiva must be compiled from source" >&2
    exit 1
fi
if ! "$PY" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))'; then
    log "error: Python.h not found; install the Python development headers (e.g. python3-dev)" >&2
    exit 1
fi

log "installing build prerequisites: cython numpy scipy setuptools wheel"
"$PY" -m pip install --disable-pip-version-check cython numpy scipy setuptools wheel

log "building opentiva==$OPENTIVA_VERSION from source (regenerates pkpd.c with Cython)"
"$PY" -m pip install --disable-pip-version-check --no-build-isolation \
    --no-binary opentiva "opentiva==$OPENTIVA_VERSION"

log "checking the installation"
"$PY" - <<'PYEOF'
from importlib.metadata import version
import opentiva.ketamine, opentiva.pump  # noqa: F401
print("[opentiva setup] opentiva", version("opentiva"), "| numpy", version("numpy"),
      "| scipy", version("scipy"), "| cython", version("cython"))
PYEOF
log "done: use $PY"
