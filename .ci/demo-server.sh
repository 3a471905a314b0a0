# Sourced by the interoperability scripts: a Python venv with pinned packages, and a real
# `ketaflow serve --demo` on free loopback ports, stopped (and its files removed) on exit.
#     venv_with VENV MODULE PACKAGE...      import MODULE, or make VENV and pip-install PACKAGE...
#     start_demo BIN NAME [serve args...]   sets WORK, HTTP_PORT, SERVER_PID; extra args may use
#                                           $MLLP_PORT, which is chosen beforehand
#     demo_password USERNAME                the demo account's password from the start-up log

require_binary() {
    if [ ! -x "$1" ]; then
        echo "error: $1 is not an executable; build it first (cargo build -p ketaflow)" >&2
        exit 1
    fi
}

venv_with() {
    local venv="$1" module="$2"
    shift 2
    if ! "$venv/bin/python" -c "import $module" 2>/dev/null; then
        python3 -m venv "$venv"
        "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
    fi
}

free_port() { python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

SERVER_PID=""
WORK=""
stop_demo() {
    if [ -n "$SERVER_PID" ] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    [ -z "$WORK" ] || rm -rf "$WORK"
}
trap stop_demo EXIT

start_demo() {
    local bin="$1" name="$2"
    shift 2
    WORK="$(mktemp -d "${TMPDIR:-/tmp}/ketaflow-$name.XXXXXX")"
    HTTP_PORT="$(free_port)"
    "$bin" serve --demo --db "sqlite://$WORK/demo.db" --listen "127.0.0.1:$HTTP_PORT" "$@" > "$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for _ in $(seq 300); do
        grep -q "ketaflow listening on" "$WORK/server.log" && return 0
        kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log"; exit 1; }
        sleep 0.1
    done
    echo "error: ketaflow serve did not start listening in 30 s" >&2
    cat "$WORK/server.log"
    exit 1
}

demo_password() {
    sed -n "s/^demo account: $1 ([a-z]*) password //p" "$WORK/server.log" | head -n1
}
