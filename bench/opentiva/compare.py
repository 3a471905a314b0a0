#!/usr/bin/env python3
"""Compare Ketaflow with opentiva: speed and agreement of the concentration curves.

Usage: compare.py OUT_DIR

Reads
  OUT_DIR/opentiva_timings.json, OUT_DIR/ketaflow_timings.json
      [{name, kind, n_subjects, median_s, min_s, repeats}, ...]
  OUT_DIR/<name>/opentiva.csv, OUT_DIR/<name>/ketaflow.csv
      subject,t_s,cp_ug_per_ml,ce_ug_per_ml   (columns found by header name)
for every scenario listed in opentiva_timings.json, and prints one table row
per scenario: subjects, both median times, the speed ratio
(opentiva / ketaflow) and the largest Cp and Ce differences.

Difference measure, computed per subject and then maximised over subjects:
    max |ketaflow - opentiva| / peak   over rows where opentiva > 1 % of peak,
with `peak` the subject's opentiva peak of the same quantity (Cp or Ce).
Normalising per subject, not by the cohort-wide peak, is the stricter choice
for cohorts whose subjects reach different peaks.

Exit status: 0 if all is well; 1 if any Cp difference exceeds CP_TOLERANCE,
or a file or timing entry is missing, or the two CSVs do not hold the same
(subject, t_s) rows. Ce differences are reported but never fail the run:
opentiva's effect-site update is approximate (pharmacology.md section 1.2),
so 1-3 % deviations from an exact solver are expected.

Standard library + numpy only.
"""

import json
import os
import sys

import numpy as np

CP_TOLERANCE = 1e-6      # relative to the subject's Cp peak
FLOOR_FRACTION = 0.01    # ignore rows below 1 % of the peak
COLUMNS = ("subject", "t_s", "cp_ug_per_ml", "ce_ug_per_ml")


class CompareError(Exception):
    """A missing or malformed input; makes the run fail."""


def read_timings(path):
    if not os.path.isfile(path):
        raise CompareError(f"missing {path}")
    try:
        with open(path, encoding="utf-8") as f:
            entries = json.load(f)
        return {e["name"]: e for e in entries}
    except (ValueError, TypeError, KeyError) as e:
        raise CompareError(f"{path}: not a list of timing entries ({e})")


def read_curves(path):
    """Return (subjects, t_s, cp, ce) sorted by (subject, t_s)."""
    if not os.path.isfile(path):
        raise CompareError(f"missing {path}")
    with open(path, encoding="utf-8") as f:
        header = [h.strip().strip('"') for h in f.readline().strip().split(",")]
    try:
        cols = [header.index(c) for c in COLUMNS]
    except ValueError:
        raise CompareError(f"{path}: header must contain {', '.join(COLUMNS)}; got {header}")
    opts = dict(delimiter=",", skiprows=1, quotechar='"', ndmin=1)
    try:
        subjects = np.loadtxt(path, dtype=str, usecols=cols[0], **opts)
        numbers = np.loadtxt(path, dtype=np.float64, usecols=cols[1:], **opts).reshape(-1, 3)
    except ValueError as e:
        raise CompareError(f"{path}: cannot parse: {e}")
    if numbers.shape[0] == 0:
        raise CompareError(f"{path}: no data rows")
    t = np.rint(numbers[:, 0]).astype(np.int64)
    order = np.lexsort((t, subjects))
    return subjects[order], t[order], numbers[order, 1], numbers[order, 2]


def max_rel_diff(subjects, reference, other):
    """Largest |other - reference| / peak over rows above FLOOR_FRACTION * peak,
    with the peak taken per subject from the reference (opentiva) curve."""
    worst = 0.0
    # Rows are sorted by subject, so each subject is one contiguous block.
    starts = np.flatnonzero(np.r_[True, subjects[1:] != subjects[:-1]])
    ends = np.r_[starts[1:], len(subjects)]
    for a, b in zip(starts, ends):
        ref, oth = reference[a:b], other[a:b]
        # A NaN/inf anywhere in the Ketaflow output must count as a failure,
        # not vanish in the comparison.
        if not np.isfinite(oth).all():
            return float("inf")
        peak = np.max(ref)
        if not peak > 0:
            continue
        mask = ref > FLOOR_FRACTION * peak
        worst = max(worst, float(np.max(np.abs(oth[mask] - ref[mask])) / peak))
    return worst


def compare_curves(scen_dir):
    """Return (max Cp diff, max Ce diff) for one scenario directory."""
    ot = read_curves(os.path.join(scen_dir, "opentiva.csv"))
    kf = read_curves(os.path.join(scen_dir, "ketaflow.csv"))
    if len(ot[1]) != len(kf[1]) or not (np.array_equal(ot[0], kf[0])
                                        and np.array_equal(ot[1], kf[1])):
        ot_keys = set(zip(ot[0].tolist(), ot[1].tolist()))
        kf_keys = set(zip(kf[0].tolist(), kf[1].tolist()))
        only_ot, only_kf = sorted(ot_keys - kf_keys), sorted(kf_keys - ot_keys)
        detail = []
        if only_ot:
            detail.append(f"{len(only_ot)} rows only in opentiva.csv (first {only_ot[0]})")
        if only_kf:
            detail.append(f"{len(only_kf)} rows only in ketaflow.csv (first {only_kf[0]})")
        if not detail:
            detail.append("duplicate (subject, t_s) rows")
        raise CompareError(f"{scen_dir}: rows differ: " + "; ".join(detail))
    subjects = ot[0]
    return (max_rel_diff(subjects, ot[2], kf[2]), max_rel_diff(subjects, ot[3], kf[3]))


def fmt_seconds(s):
    if s is None:
        return "-"
    if s >= 1:
        return f"{s:.3f} s"
    if s >= 1e-3:
        return f"{s * 1e3:.2f} ms"
    return f"{s * 1e6:.1f} us"


def fmt_ratio(ot, kf):
    if ot is None or kf is None:
        return "-"
    if kf <= 0:
        return "inf"
    r = ot / kf
    return f"{r:.0f}x" if r >= 10 else f"{r:.2f}x"


def fmt_diff(d):
    return "-" if d is None else f"{d:.1e}"


def main(argv):
    if len(argv) != 2:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    out_dir = argv[1]
    problems = []
    try:
        ot_times = read_timings(os.path.join(out_dir, "opentiva_timings.json"))
        kf_times = read_timings(os.path.join(out_dir, "ketaflow_timings.json"))
    except CompareError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1

    rows = []
    for name, ot in ot_times.items():
        kf = kf_times.get(name)
        if kf is None:
            problems.append(f"{name}: no entry in ketaflow_timings.json")
        elif kf.get("n_subjects") != ot.get("n_subjects"):
            problems.append(f"{name}: n_subjects differ (opentiva {ot.get('n_subjects')}, "
                            f"ketaflow {kf.get('n_subjects')})")
        dcp = dce = None
        try:
            dcp, dce = compare_curves(os.path.join(out_dir, name))
            # Effect-site TCI: the two programs choose different pump rates (opentiva drives its
            # approximate Ce; Ketaflow the exact one), so Cp is compared for information only.
            comparable = not (kf and kf.get("cp_comparable") is False)
            if comparable and not dcp <= CP_TOLERANCE:
                problems.append(f"{name}: Cp difference {dcp:.2e} exceeds {CP_TOLERANCE:.0e}")
            if not comparable:
                name = name + " *"
        except CompareError as e:
            problems.append(str(e))
        kf_median = kf.get("median_s") if kf else None
        rows.append((name, str(ot.get("n_subjects", "?")), fmt_seconds(ot.get("median_s")),
                     fmt_seconds(kf_median), fmt_ratio(ot.get("median_s"), kf_median),
                     fmt_diff(dcp), fmt_diff(dce)))
    for name in kf_times.keys() - ot_times.keys():
        print(f"note: {name} is in ketaflow_timings.json only; not compared", file=sys.stderr)

    header = ("scenario", "subjects", "opentiva", "ketaflow", "ratio",
              "max dCp/peak", "max dCe/peak")
    widths = [max(len(r[i]) for r in rows + [header]) for i in range(len(header))]

    def fmt_row(r):
        # First column left-aligned, the rest right-aligned.
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                         for i, (c, w) in enumerate(zip(r, widths)))
    print(fmt_row(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(fmt_row(r))
    print(f"\nmedian wall times; ratio = opentiva / ketaflow. Differences are relative to "
          f"each subject's opentiva peak,\nover rows above {FLOOR_FRACTION:.0%} of it. Cp must "
          f"agree within {CP_TOLERANCE:.0e}; Ce is informational (opentiva's Ce is approximate).\n"
          f"* effect-site TCI: different pump schedules by design (opentiva targets its approximate Ce),\n"
          f"  so Cp is not required to agree.")

    if problems:
        print("\nFAILED:", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
