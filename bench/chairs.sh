#!/usr/bin/env bash
# Chair streaming benchmark (issue 4): builds the release binaries, starts `ketaflow serve --demo`
# on a fresh database, runs bench/chairs against it (N monitors streaming one reading per second,
# one board following the live stream) and stops the server. Results: docs/benchmarks.md.
#
#   bench/chairs.sh [--postgres] [--no-build] [chairs options, e.g. --chairs 1000 --seconds 30]
#
# SQLite (default): a new file in a temporary directory. --postgres: the database ketaflow_bench on
# $KETAFLOW_BENCH_POSTGRES (default postgres://postgres@127.0.0.1:5432), dropped and created anew.
# The server listens on 127.0.0.1:$KETAFLOW_BENCH_PORT (default 18080). Exit status: the bench's
# (0 when every target is met, 1 when one is not, 2 on a setup error).
set -euo pipefail
cd "$(dirname "$0")/.."

backend=sqlite
build=1
bench_args=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --postgres) backend=postgres ;;
        --no-build) build=0 ;;
        *) bench_args+=("$1") ;;
    esac
    shift
done

port="${KETAFLOW_BENCH_PORT:-18080}"
pg="${KETAFLOW_BENCH_POSTGRES:-postgres://postgres@127.0.0.1:5432}"
pg_db=ketaflow_bench

if [[ $build == 1 ]]; then
    echo "== cargo build --release -p ketaflow -p ketaflow-bench-chairs"
    cargo build --release -p ketaflow -p ketaflow-bench-chairs
fi

if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
    echo "error: something already listens on 127.0.0.1:$port; set KETAFLOW_BENCH_PORT" >&2
    exit 2
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
    if [[ -n $server_pid ]] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

case "$backend" in
    sqlite)
        db="sqlite://$work/bench.db"
        ;;
    postgres)
        for tool in psql pg_isready; do
            command -v "$tool" >/dev/null || {
                echo "error: $tool not found; install the PostgreSQL client (Debian: postgresql-client)" >&2
                exit 2
            }
        done
        pg_isready -q -d "$pg/postgres" || {
            echo "error: PostgreSQL is not reachable at ${pg#*@}" >&2
            exit 2
        }
        psql "$pg/postgres" -q -v ON_ERROR_STOP=1 \
            -c "DROP DATABASE IF EXISTS $pg_db WITH (FORCE)" -c "CREATE DATABASE $pg_db"
        db="$pg/$pg_db"
        ;;
esac

commit="$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
git diff --quiet HEAD 2>/dev/null || commit="$commit+changes"
built="$(date -u -r target/release/ketaflow +%Y-%m-%dT%H:%M:%SZ)"
echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ)  tree at commit $commit  server built $built  backend $backend  cores $(nproc)"

target/release/ketaflow serve --demo --db "$db" --listen "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server_pid=$!
for _ in $(seq 1 600); do
    grep -q "^ketaflow listening" "$work/server.log" 2>/dev/null && break
    kill -0 "$server_pid" 2>/dev/null || {
        echo "error: the server exited:" >&2
        cat "$work/server.log" >&2
        exit 2
    }
    sleep 0.1
done
grep -q "^ketaflow listening" "$work/server.log" || {
    echo "error: the server did not start within 60 s" >&2
    exit 2
}

watch=()
[[ $backend == postgres ]] && watch=(--watch-comm postgres)
status=0
target/release/chairs --url "http://127.0.0.1:$port" --server-pid "$server_pid" "${watch[@]}" "${bench_args[@]}" || status=$?

echo "== server: $(ps -o rss= -p "$server_pid" | awk '{printf "%.0f MiB resident", $1/1024}'), $(grep -c -E ' (WARN|ERROR) ' "$work/server.log" || true) warnings/errors logged"
grep -E ' (WARN|ERROR) ' "$work/server.log" | head -5 || true
exit "$status"
