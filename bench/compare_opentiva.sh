#!/usr/bin/env bash
# Ketaflow versus opentiva 1.1.2 on the same ketamine simulations, in one run.
#
#   bench/compare_opentiva.sh [SCENARIOS.json] [OUT_DIR]
#
# Sets up opentiva in a virtualenv (bench/opentiva/setup.sh), runs every scenario in opentiva and
# in Ketaflow's engine (computation only is timed on both sides), then prints the speed ratio and
# the largest differences between the curves (bench/opentiva/compare.py). Exits non-zero when a
# plasma curve differs by more than 1e-6 of its peak.
set -euo pipefail
cd "$(dirname "$0")/.."
scenarios=${1:-bench/opentiva/scenarios.json}
out=${2:-target/bench-out}
venv=${KETAFLOW_BENCH_VENV:-target/bench-venv}

bench/opentiva/setup.sh
mkdir -p "$out"
echo "== opentiva"
"$venv/bin/python" bench/opentiva/run_opentiva.py "$scenarios" "$out"
echo "== ketaflow"
cargo run --release --quiet -p ketaflow-pkpd --example peer_scenarios -- "$scenarios" "$out"
echo "== comparison"
"$venv/bin/python" bench/opentiva/compare.py "$out"
