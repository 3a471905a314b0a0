#!/usr/bin/env bash
# HL7 interoperability: a real `ketaflow serve --demo --mllp` against the Python `hl7` package
# (mllp_send, MLLPClient) and `hl7apy` (parsing the ACKs). Builds nothing:
#     .ci/hl7-interop.sh [BINARY]        (default target/debug/ketaflow)
# HL7_VENV: the venv to install into (default target/hl7-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/demo-server.sh

BIN="${1:-target/debug/ketaflow}"
VENV="${HL7_VENV:-target/hl7-venv}"
require_binary "$BIN"
# Pure-Python wheels with no dependencies (hl7 0.4.5, BSD; hl7apy 1.3.5, MIT).
venv_with "$VENV" "hl7, hl7apy" "hl7==0.4.5" "hl7apy==1.3.5"
MLLP_PORT="$(free_port)"
start_demo "$BIN" hl7 --mllp "127.0.0.1:$MLLP_PORT"
PATH="$VENV/bin:$PATH" "$VENV/bin/python" tests-interop/hl7_interop.py 127.0.0.1 "$MLLP_PORT"
