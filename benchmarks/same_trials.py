"""Do two runs of a study hold the same trials? Every trial's state, parameters, objective values and
metrics, and the study's reference teacher, compared exactly (the run's own bookkeeping left out: which
worker, when, how long).

    .venv/bin/python benchmarks/same_trials.py sqlite:///before.db sqlite:///after.db [--study digits]

Used to show that a change meant to leave results alone (issue 23's move of the modules) did: run
``sweetspot run --threads 1`` before and after it, in two folders, and compare their databases.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import optuna

BOOKKEEPING = {"worker", "queued_by", "time_s"}  # who ran a trial, and how long it took


def trials_of(url: str, name: str) -> tuple[list[dict[str, Any]], Any]:
    study = optuna.load_study(study_name=name, storage=url)
    trials = [{"number": t.number, "state": t.state.name, "params": t.params, "values": t.values,
               "attrs": {k: v for k, v in t.user_attrs.items() if k not in BOOKKEEPING}} for t in study.trials]
    return trials, study.user_attrs.get("sweetspot_reference")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before")
    parser.add_argument("after")
    parser.add_argument("--study", default="digits")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    (a, ref_a), (b, ref_b) = trials_of(args.before, args.study), trials_of(args.after, args.study)
    differ = [f"trial {x['number']}: {k}" for x, y in zip(a, b) for k in x if x[k] != y[k]]
    if len(a) != len(b):
        differ.append(f"{len(a)} trials before, {len(b)} after")
    if ref_a != ref_b:
        differ.append("the reference teacher's figures")
    print(f"{len(a)} trials before, {len(b)} after; compared: state, parameters, values, every metric, "
          "and the reference teacher")
    print("identical" if not differ else "differ: " + "; ".join(differ))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
