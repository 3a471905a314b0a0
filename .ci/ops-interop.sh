#!/usr/bin/env bash
# The operators' door against outside tools: a real `ketaflow serve --demo`, its /metrics parsed
# by the Prometheus project's Python client, counters moving as a reading is posted. Builds nothing:
#     .ci/ops-interop.sh [BINARY]        (default target/debug/ketaflow)
# OPS_VENV: the venv to install into (default target/ops-venv).
set -euo pipefail
cd "$(dirname "$0")/.."
. .ci/demo-server.sh

BIN="${1:-target/debug/ketaflow}"
VENV="${OPS_VENV:-target/ops-venv}"
require_binary "$BIN"
# prometheus_client 0.21.1 (Apache-2.0), pure Python, no dependencies.
venv_with "$VENV" prometheus_client "prometheus_client==0.21.1"
start_demo "$BIN" ops
"$VENV/bin/python" tests-interop/metrics_interop.py "http://127.0.0.1:$HTTP_PORT" demo.nurse "$(demo_password demo.nurse)"
