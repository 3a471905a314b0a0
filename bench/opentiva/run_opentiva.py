#!/usr/bin/env python3
"""Run the Ketaflow benchmark scenarios through opentiva 1.1.2 and time them.

Usage: run_opentiva.py SCENARIOS.json OUT_DIR

For every scenario in SCENARIOS.json this writes
  OUT_DIR/<name>/opentiva.csv            subject,t_s,cp_ug_per_ml,ce_ug_per_ml
  OUT_DIR/<name>/opentiva_infusions.csv  (TCI only) subject,start_s,dose_mg_per_s,duration_s,end_s
and, for all scenarios together,
  OUT_DIR/opentiva_timings.json          [{name, kind, n_subjects, median_s, min_s, repeats}, ...]

Conventions (shared with the Rust side, see README.md):
  * Times are integer seconds; opentiva only evaluates integer seconds.
  * Output rows are t_s = 0, grid_s, 2*grid_s, ... <= end_s (end_s included).
  * Concentrations are ug/mL (= mg/L); infusion rates are mg/s.
  * Timings cover the computation only (model construction, TCI generation,
    simulation), not imports, JSON parsing or file writing.

Needs the virtualenv made by setup.sh (opentiva + numpy + scipy).
"""

import argparse
import json
import os
import statistics
import sys
import time
import warnings

import numpy as np
import opentiva.ketamine as ketamine
import opentiva.pump as otpump

# Scenario model id -> opentiva class (all in opentiva.ketamine).
MODEL_CLASSES = {
    "clements1981": ketamine.Clements250,
    "domino1982": ketamine.Domino,
    "hijazi2003": ketamine.Hijazi,
    "herd2007": ketamine.Herd,
    "hornik2018": ketamine.Hornik,
    "kamp2020": ketamine.Klamp,
}

# opentiva encodes sex as 0 (male) / 1 (female).
SEX_CODES = {"male": 0, "female": 1}

# TCI settings used by the reference runs (pharmacology.md section 1.3); a
# scenario may override them with the optional keys named in tci_settings().
DEFAULT_LOAD_DURATION_S = 10
DEFAULT_CP_LIMIT = 1.2
DEFAULT_CP_LIMIT_DURATION_S = 10


def log(msg):
    """Progress/diagnostic output goes to stderr so stdout stays clean."""
    print(msg, file=sys.stderr, flush=True)


class ScenarioError(ValueError):
    """A scenario file entry that this runner cannot execute."""


# --------------------------------------------------------------------------
# Scenario parsing
# --------------------------------------------------------------------------

def as_int_seconds(value, what):
    """opentiva truncates times to whole seconds; refuse fractional input so
    that both engines are guaranteed to simulate the same schedule."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScenarioError(f"{what} must be a number, got {value!r}")
    if float(value) != int(value):
        raise ScenarioError(f"{what} must be a whole number of seconds, got {value}")
    return int(value)


def check_subject(sub, scenario_name):
    sid = str(sub["id"])
    # Subject ids are written unquoted into the CSV.
    if any(c in sid for c in ',"\n\r') or not sid:
        raise ScenarioError(f"{scenario_name}: subject id {sid!r} must be non-empty "
                            "and contain no comma, quote or newline")
    if sub.get("sex", "male") not in SEX_CODES:
        raise ScenarioError(f"{scenario_name}: subject {sid}: sex must be 'male' or 'female'")
    for key in ("weight_kg", "age_years", "height_cm"):
        if key not in sub:
            raise ScenarioError(f"{scenario_name}: subject {sid}: missing {key}")


def check_scenario(sc):
    name = sc.get("name")
    if not name or "/" in name or name.startswith("."):
        raise ScenarioError(f"bad scenario name {name!r}")
    if sc.get("kind") not in ("simulate", "tci"):
        raise ScenarioError(f"{name}: kind must be 'simulate' or 'tci'")
    if sc.get("model") not in MODEL_CLASSES:
        raise ScenarioError(f"{name}: unknown model {sc.get('model')!r}; "
                            f"known: {', '.join(sorted(MODEL_CLASSES))}")
    if not sc.get("subjects"):
        raise ScenarioError(f"{name}: no subjects")
    ids = [str(s["id"]) for s in sc["subjects"]]
    if len(set(ids)) != len(ids):
        raise ScenarioError(f"{name}: duplicate subject ids")
    for sub in sc["subjects"]:
        check_subject(sub, name)
    if as_int_seconds(sc["end_s"], f"{name}: end_s") <= 0:
        raise ScenarioError(f"{name}: end_s must be > 0")
    if as_int_seconds(sc.get("grid_s", 1), f"{name}: grid_s") <= 0:
        raise ScenarioError(f"{name}: grid_s must be > 0")
    if sc["kind"] == "simulate":
        if not sc.get("infusions") and not sc.get("infusions_mg_per_kg"):
            raise ScenarioError(f"{name}: simulate scenario without infusions")
        for inf in sc.get("infusions", []) + sc.get("infusions_mg_per_kg", []):
            as_int_seconds(inf["start_s"], f"{name}: infusion start_s")
            if as_int_seconds(inf["duration_s"], f"{name}: infusion duration_s") <= 0:
                raise ScenarioError(f"{name}: infusion duration_s must be > 0")
    else:
        if sc.get("site") not in ("plasma", "effect"):
            raise ScenarioError(f"{name}: site must be 'plasma' or 'effect'")
        for key in ("target_until_s", "interval_s"):
            as_int_seconds(sc[key], f"{name}: {key}")
        if not 0 < int(sc["target_until_s"]) <= int(sc["end_s"]):
            raise ScenarioError(f"{name}: need 0 < target_until_s <= end_s")
        for key in ("target_ug_per_ml", "syringe_mg_per_ml"):
            if key not in sc:
                raise ScenarioError(f"{name}: missing {key}")
        # opentiva's Cython code declares the pump rate limit as a C int.
        max_rate = sc.get("max_rate_ml_per_h")
        if isinstance(max_rate, bool) or not isinstance(max_rate, (int, float)) \
                or float(max_rate) != int(max_rate) or max_rate <= 0:
            raise ScenarioError(f"{name}: max_rate_ml_per_h must be a positive whole number")


def load_scenarios(path):
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    repeats = int(doc.get("repeats", 5))
    if repeats < 1:
        raise ScenarioError("repeats must be >= 1")
    scenarios = doc["scenarios"]
    names = [sc.get("name") for sc in scenarios]
    if len(set(names)) != len(names):
        raise ScenarioError("duplicate scenario names")
    for sc in scenarios:
        check_scenario(sc)
    return repeats, scenarios


# --------------------------------------------------------------------------
# opentiva calls (everything here is inside the timed region)
# --------------------------------------------------------------------------

def make_model(model_id, sub):
    """Build the opentiva model object for one subject.
    Constructor is (sex, age, weight, height); sex must be a Python int."""
    cls = MODEL_CLASSES[model_id]
    return cls(SEX_CODES[sub.get("sex", "male")], sub["age_years"],
               sub["weight_kg"], sub["height_cm"])


def subject_infusions(sc, sub):
    """Absolute-rate infusions plus per-kg infusions scaled to this subject,
    as (start_s, dose_mg_per_s, duration_s)."""
    rows = [(int(inf["start_s"]), float(inf["rate_mg_per_s"]), int(inf["duration_s"]))
            for inf in sc.get("infusions", [])]
    for inf in sc.get("infusions_mg_per_kg", []):
        duration = int(inf["duration_s"])
        rate = inf["dose_mg_per_kg"] * sub["weight_kg"] / duration
        rows.append((int(inf["start_s"]), float(rate), duration))
    return rows


def simulate_subject(sc, sub):
    """Plain simulation of user infusions. Returns (concentrations, None),
    concentrations being opentiva's (end_s + 1, 3) array [t_s, Cp, Ce]."""
    model = make_model(sc["model"], sub)
    # opentiva outputs t = 0 .. end_time - 1; +1 so that end_s is included.
    pump = otpump.Pump(model=model, drug_concentration=1, end_time=int(sc["end_s"]) + 1)
    for start, dose, duration in subject_infusions(sc, sub):
        pump.add_infusion(start=start, dose=dose, duration=duration)
    return pump.run(), None


def tci_settings(sc):
    return {
        "load_duration_s": int(sc.get("load_duration_s", DEFAULT_LOAD_DURATION_S)),
        "cp_limit": float(sc.get("cp_limit", DEFAULT_CP_LIMIT)),
        "cp_limit_duration_s": int(sc.get("cp_limit_duration_s", DEFAULT_CP_LIMIT_DURATION_S)),
    }


def tci_subject(sc, sub):
    """TCI to a constant target from t=0 until target_until_s, then stop.

    opentiva has no stop command, so this runs in two steps (as the reference
    runs in pharmacology.md section 1.3 did):
      1. a TCI pump with end_time = target_until_s generates the infusion
         schedule (loading dose + maintenance infusions every interval_s);
      2. that schedule is replayed as user infusions in a fresh pump that
         simulates to end_s, so after target_until_s nothing is infused.
    Step 1 calls generate_infusions() (the schedule generator that run()
    calls first) rather than run(): the concentrations up to target_until_s
    would be recomputed in step 2 anyway.
    Returns (concentrations, infusion_list)."""
    settings = tci_settings(sc)
    model = make_model(sc["model"], sub)
    syringe = float(sc["syringe_mg_per_ml"])
    interval = int(sc["interval_s"])

    tci = otpump.Pump(model=model, drug_concentration=syringe,
                      end_time=int(sc["target_until_s"]),
                      cp_limit=settings["cp_limit"],
                      cp_limit_duration=settings["cp_limit_duration_s"],
                      maintenance_infusion_duration=interval,
                      maintenance_infusion_multiplier=1,
                      max_infusion_rate=int(sc["max_rate_ml_per_h"]))
    # ce_bolus_only=True selects the 'original' Shafer-Gregg effect-site
    # method; it is ignored for plasma targeting.
    tci.add_target(start=0, target=float(sc["target_ug_per_ml"]),
                   duration=settings["load_duration_s"],
                   effect=(sc["site"] == "effect"), ce_bolus_only=True)
    tci.generate_infusions()
    schedule = tci.infusion_list

    replay = otpump.Pump(model=model, drug_concentration=syringe,
                         end_time=int(sc["end_s"]) + 1)
    for start, dose, duration, _end in schedule:
        replay.add_infusion(start=int(start), dose=float(dose), duration=int(duration))
    return replay.run(), schedule


def compute_scenario(sc, show_progress):
    """Run one scenario for all its subjects. Returns [(subject_id, conc, schedule)]."""
    runner = tci_subject if sc["kind"] == "tci" else simulate_subject
    subjects = sc["subjects"]
    n = len(subjects)
    step = max(1, n // 10)
    results = []
    for i, sub in enumerate(subjects, 1):
        conc, schedule = runner(sc, sub)
        results.append((str(sub["id"]), conc, schedule))
        if show_progress and (i % step == 0 or i == n):
            log(f"      subjects {i}/{n}")
    return results


def time_scenario(sc, repeats):
    """Run a scenario `repeats` times; return (results of the first run, wall times)."""
    times = []
    first = None
    cohort_progress = len(sc["subjects"]) >= 100
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for r in range(repeats):
            t0 = time.perf_counter()
            results = compute_scenario(sc, cohort_progress and r == 0)
            times.append(time.perf_counter() - t0)
            if first is None:
                first = results
            del results
            log(f"    repeat {r + 1}/{repeats}: {times[-1]:.4f} s")
    # opentiva warns (once per model construction) for subjects outside a
    # model's validated range; summarise rather than repeat them.
    messages = sorted({str(w.message).split("\n")[0] for w in caught})
    if messages:
        log(f"    opentiva warnings ({len(caught)} over all repeats), e.g.: {messages[0]}")
    return first, times


# --------------------------------------------------------------------------
# Output (not timed)
# --------------------------------------------------------------------------

def write_concentrations(path, results, grid_s):
    """opentiva always computes on a 1-s grid (its effect-site recursion needs
    every second); for grid_s > 1 only every grid_s-th row (t = 0, grid_s,
    2*grid_s, ...) is written."""
    with open(path, "w", encoding="utf-8") as f:
        f.write("subject,t_s,cp_ug_per_ml,ce_ug_per_ml\n")
        for sid, conc, _ in results:
            # %.17g round-trips doubles exactly.
            np.savetxt(f, conc[::grid_s], fmt=f"{sid.replace('%', '%%')},%d,%.17g,%.17g")


def write_schedule(path, results):
    with open(path, "w", encoding="utf-8") as f:
        f.write("subject,start_s,dose_mg_per_s,duration_s,end_s\n")
        for sid, _, schedule in results:
            np.savetxt(f, schedule, fmt=f"{sid.replace('%', '%%')},%d,%.17g,%d,%d")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("scenarios", help="scenario JSON file")
    ap.add_argument("out_dir", help="output directory (created if missing)")
    args = ap.parse_args(argv)

    try:
        repeats, scenarios = load_scenarios(args.scenarios)
    except KeyError as e:
        log(f"error: {args.scenarios}: missing key {e}")
        return 2
    except (ScenarioError, TypeError, ValueError) as e:
        log(f"error: {args.scenarios}: {e}")
        return 2

    os.makedirs(args.out_dir, exist_ok=True)
    timings = []
    for k, sc in enumerate(scenarios, 1):
        name = sc["name"]
        n_sub = len(sc["subjects"])
        log(f"[{k}/{len(scenarios)}] {name} ({sc['kind']}, {sc['model']}, "
            f"{n_sub} subject{'s' if n_sub != 1 else ''}, {repeats} repeats)")
        results, times = time_scenario(sc, repeats)

        scen_dir = os.path.join(args.out_dir, name)
        os.makedirs(scen_dir, exist_ok=True)
        write_concentrations(os.path.join(scen_dir, "opentiva.csv"), results,
                             int(sc.get("grid_s", 1)))
        if sc["kind"] == "tci":
            write_schedule(os.path.join(scen_dir, "opentiva_infusions.csv"), results)

        entry = {"name": name, "kind": sc["kind"], "n_subjects": n_sub,
                 "median_s": statistics.median(times), "min_s": min(times),
                 "repeats": repeats}
        timings.append(entry)
        log(f"    median {entry['median_s']:.4f} s, min {entry['min_s']:.4f} s")

    timings_path = os.path.join(args.out_dir, "opentiva_timings.json")
    with open(timings_path, "w", encoding="utf-8") as f:
        json.dump(timings, f, indent=2)
        f.write("\n")
    log(f"wrote {timings_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
