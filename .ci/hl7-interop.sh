#!/usr/bin/env bash
# HL7 interoperability: a real `ketaflow serve --demo --mllp` against the Python `hl7` package
# (mllp_send, MLLPClient) and `hl7apy` (parsing the ACKs). Builds nothing:
#     .ci/hl7-interop.sh [BINARY]        (default target/debug/ketaflow)
# HL7_VENV: the venv to install into (default target/hl7-venv).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN="${1:-target/debug/ketaflow}"
VENV="${HL7_VENV:-target/hl7-venv}"
if [ ! -x "$BIN" ]; then
    echo "error: $BIN is not an executable; build it first (cargo build -p ketaflow)" >&2
    exit 1
fi
# Pure-Python wheels with no dependencies (hl7 0.4.5, BSD; hl7apy 1.3.5, MIT).
if ! "$VENV/bin/python" -c "import hl7, hl7apy" 2>/dev/null; then
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "hl7==0.4.5" "hl7apy==1.3.5"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/ketaflow-hl7.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
HTTP_PORT="$(free_port)"
MLLP_PORT="$(free_port)"
"$BIN" serve --demo --db "sqlite://$WORK/demo.db" --listen "127.0.0.1:$HTTP_PORT" --mllp "127.0.0.1:$MLLP_PORT" \
    > "$WORK/server.log" 2>&1 &
SERVER_PID=$!
for _ in $(seq 300); do
    grep -q "ketaflow listening on" "$WORK/server.log" && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
    sleep 0.1
done
PATH="$VENV/bin:$PATH" "$VENV/bin/python" tests-interop/hl7_interop.py 127.0.0.1 "$MLLP_PORT"
