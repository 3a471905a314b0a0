#!/usr/bin/env bash
# Whole-process speed of the PK command line with CSV output, against opentiva 1.1.2 doing the same
# work (issue 20): 200 subjects (Kamp 2020, 0.5 mg/kg over 40 min) on a 60-s grid over 4 h, plus 20
# plasma-TCI runs (0.2 µg/mL for 1 h, 10-s pump intervals) on a 10-s grid over 3 h, each side
# writing CSV. Both are timed from outside by farm-bench, process start-up included, A/B pair by pair.
#     bench/cli_output.sh [RUNS]        (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS="${1:-5}"
OUT=target/bench-out/cli-output
VENV="${KETAFLOW_BENCH_VENV:-target/bench-venv}"
mkdir -p "$OUT"

bench/opentiva/setup.sh
cargo build --release --quiet -p ketaflow
BIN="$PWD/target/release/ketaflow"

# The same subjects for both sides: weights 45–124.6 kg, ages 18–74, heights 150–190 cm.
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
def subjects(n):
    return [{"id": f"s{i + 1:03d}", "weight_kg": round(45 + 0.4 * i, 1), "age_years": 18 + (7 * i) % 57,
             "height_cm": 150 + (13 * i) % 41, "sex": "male" if i % 2 == 0 else "female"} for i in range(n)]
for n in (200, 20):
    with open(f"{out}/cohort{n}.csv", "w") as f:
        f.write("id,weight_kg,age_years,height_cm,sex\n")
        for s in subjects(n):
            f.write(f"{s['id']},{s['weight_kg']},{s['age_years']},{s['height_cm']},{s['sex']}\n")
doc = {"repeats": 1, "scenarios": [
    {"name": "cohort200_60s", "kind": "simulate", "model": "kamp2020", "subjects": subjects(200),
     "infusions_mg_per_kg": [{"start_s": 0, "dose_mg_per_kg": 0.5, "duration_s": 2400}],
     "end_s": 14400, "grid_s": 60},
    {"name": "tci20_plasma_10s", "kind": "tci", "site": "plasma", "model": "kamp2020", "subjects": subjects(20),
     "target_ug_per_ml": 0.2, "target_until_s": 3600, "end_s": 10800, "interval_s": 10,
     "syringe_mg_per_ml": 10, "max_rate_ml_per_h": 1200, "load_duration_s": 10, "cp_limit": 1.2,
     "cp_limit_duration_s": 10, "grid_s": 10},
]}
json.dump(doc, open(f"{out}/workload.json", "w"), indent=1)
PY

KETAFLOW="$BIN simulate --cohort $OUT/cohort200.csv --infuse '0.5 mg/kg over 40 min' --every 60s --until 4h --csv > $OUT/ketaflow_sim.csv 2>/dev/null && $BIN tci --cohort $OUT/cohort20.csv --target-plasma 0.2ug/ml --for 1h --every 10s --until 3h --csv > $OUT/ketaflow_tci.csv 2>/dev/null"
OPENTIVA="$PWD/$VENV/bin/python bench/opentiva/run_opentiva.py $OUT/workload.json $OUT/opentiva > /dev/null 2>&1"
sh -c "$KETAFLOW"
echo "ketaflow rows: $(($(wc -l < "$OUT/ketaflow_sim.csv") - 1)) simulated, $(($(wc -l < "$OUT/ketaflow_tci.csv") - 1)) TCI"
farm-bench -n "$RUNS" --timeout 600 --vs "sh -c '$OPENTIVA'" -- sh -c "$KETAFLOW"
