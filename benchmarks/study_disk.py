"""What a study leaves on disk, and what bounding it costs in time.

Runs ``sweetspot run`` on a study (default: the built-in digits study, 25 trials) once per setting,
each in a fresh SQLite file with its own artifact folder, and prints the wall time, teacher epochs
trained, and the bytes left beside the database: teacher weights, soft-label pictures, shared
checkpoints, the database itself. The settings (``--settings``, each a quoted list of flags):

* ``unbounded``: every trial's weights and a 2048 MB checkpoint budget (what sweetspot kept before
  ``--keep-weights`` and the smaller default budget);
* ``default``: today's defaults.

Checks that every setting chose the same parameters and got the same values as the first (bounding
the disk may change nothing but the time and the bytes). Target (issue 15): the default study under
100 MB in all, at most 10 % more time than unbounded. ``--repeats N`` runs each setting N times,
alternating, and prints the wall times as mean ± sd.

    .venv/bin/python benchmarks/study_disk.py [--config FILE] [--trials 25] [--repeats 1]
        [--settings "unbounded=--keep-weights 1000000 --checkpoint-mb 2048" "default="]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import optuna
from machine import describe
from study_cost import REPO, epochs, run_study

SETTINGS = ["unbounded=--keep-weights 1000000 --checkpoint-mb 2048", "default="]


def sizes(folder: Path) -> dict[str, int]:
    """Bytes by kind: the database, teacher weights and pictures (artifact files), checkpoints."""
    out = {"database": 0, "weights": 0, "pictures": 0, "checkpoints": 0}
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        size = path.stat().st_size
        if path.name.startswith("study.db"):
            out["database"] += size
        elif path.parent.name == "checkpoints":
            out["checkpoints"] += size
        elif _starts_with(path, b"\x89PNG"):
            out["pictures"] += size
        else:
            out["weights"] += size
    return out


def _starts_with(path: Path, magic: bytes) -> bool:
    with path.open("rb") as handle:  # not read_bytes: a teacher's weights are megabytes
        return handle.read(len(magic)) == magic


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "studies" / "digits.yaml"))
    parser.add_argument("--trials", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--settings", nargs="+", default=SETTINGS, metavar="NAME=FLAGS")
    args = parser.parse_args()
    settings = {item.partition("=")[0]: item.partition("=")[2].split() for item in args.settings}
    print(describe())
    print(f"study {args.config}, {args.trials} trials, {args.repeats} repeat(s) per setting")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    times: dict[str, list[float]] = {name: [] for name in settings}
    rows: dict[str, list] = {}
    found: dict[str, tuple[dict[str, int], tuple[int, int]]] = {}
    for _ in range(args.repeats):
        for name, flags in settings.items():
            with tempfile.TemporaryDirectory() as tmp:
                seconds, study = run_study(args.config, args.trials, flags, Path(tmp), None)
                times[name].append(seconds)
                rows[name] = [(t.number, t.params, t.values) for t in study.trials]
                found[name] = (sizes(Path(tmp)), epochs(study, 1))
    first = next(iter(settings))
    print(f"{'setting':<12} {'wall s':>14} {'epochs':>9} {'weights':>8} {'pictures':>8} {'ckpts':>8} {'db':>6} "
          f"{'total MB':>8}  same as {first}")
    for name in settings:
        by_kind, (requested, trained) = found[name]
        mb = {k: v / 2**20 for k, v in by_kind.items()}
        sd = statistics.stdev(times[name]) if len(times[name]) > 1 else 0.0
        print(f"{name:<12} {statistics.mean(times[name]):>7.1f} ± {sd:>4.1f} {trained:>4}/{requested:<4} "
              f"{mb['weights']:>8.1f} {mb['pictures']:>8.1f} {mb['checkpoints']:>8.1f} {mb['database']:>6.1f} "
              f"{sum(mb.values()):>8.1f}  {'yes' if rows[name] == rows[first] else 'NO'}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
