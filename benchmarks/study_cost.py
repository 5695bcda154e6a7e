"""What a whole study costs: shared teacher paths on and off, and the same trials by a conventional pipeline.

Runs ``sweetspot run`` on a Fashion-MNIST study (default ``studies/fashion-mnist-mlp.yaml``, 30
trials) three times, each in a fresh SQLite file: with ``--no-share`` (every teacher from scratch),
with shared paths (the default: checkpoints where trials stop) and with ``--checkpoint-every 1``
(a checkpoint after every epoch too). Prints epochs trained against epochs requested and the wall
times, and checks that all three chose the same parameters and got the same values (sharing may
change nothing but the time). The conventional pipeline (``benchmarks/conventional.py``) is timed per
epoch: loading the data once, one teacher epoch at each batch size the study used and one
distillation epoch, summed over the study's 30 trials as it would run them one by one (``--full``
runs every trial instead: hours on 2 cores). Targets (issue 6): at most 0.4 of the requested
epochs trained with sharing on; the study at least 10x faster than the conventional pipeline.

    .venv/bin/python benchmarks/study_cost.py [--config FILE] [--trials 30] [--data-dir DIR] [--full]
        [--teacher-seeds 3]

``--teacher-seeds N``: the studies train N stacked teacher seeds per trial (``search.teacher_seeds``);
the epochs counted are those of every seed.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import conventional
import optuna
import yaml
from machine import describe

from sweetspot.config import load_config
from sweetspot.core.datasets import default_root, load_mnist_family

REPO = Path(__file__).resolve().parents[1]


MODES = {"sharing off": ["--no-share"], "sharing on": [], "every epoch": ["--checkpoint-every", "1"]}


def run_study(
    config: str, trials: int, flags: list[str], folder: Path, data_dir: str | None
) -> tuple[float, optuna.Study]:
    url = f"sqlite:///{folder / 'study.db'}"
    cmd = [
        sys.executable,
        "-m",
        "sweetspot.cli",
        "run",
        config,
        "--trials",
        str(trials),
        "--storage",
        url,
        "--artifacts",
        str(folder / "artifacts"),
        "--no-progress",
        *flags,
        *(["--data-dir", data_dir] if data_dir else []),
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return seconds, optuna.load_study(study_name=load_config(config).name, storage=url)


def least_trainable(study: optuna.Study, seeds: int) -> int:
    """Teacher epochs if every path were trained once, to its longest trial: what any sharing of
    trials' paths must still train (a path is a batch size, learning rate and teacher seed here)."""
    longest: dict[tuple, int] = {}
    for t in study.trials:
        if t.state.is_finished() and "teacher_epochs" in t.user_attrs:
            path = (t.params["batch_size"], t.params.get("teacher_lr"))
            longest[path] = max(longest.get(path, 0), t.params["epochs"])
    return seeds * sum(longest.values())


def epochs(study: optuna.Study, seeds: int) -> tuple[int, int]:
    """(requested, trained) teacher epochs over the study's finished trials, every teacher seed counted."""
    done = [t for t in study.trials if t.state.is_finished() and "teacher_epochs" in t.user_attrs]
    return seeds * sum(t.params["epochs"] for t in done), sum(t.user_attrs["teacher_epochs"]["trained"] for t in done)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(REPO / "studies" / "fashion-mnist-mlp.yaml"))
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--data-dir", help="where the Fashion-MNIST files are (default: as sweetspot finds them)")
    parser.add_argument("--full", action="store_true", help="run every trial through the conventional pipeline")
    parser.add_argument("--teacher-seeds", type=int, default=1,
                        help="search.teacher_seeds of the studies (stacked teacher seeds per trial; default 1)")
    args = parser.parse_args()
    config = load_config(args.config)
    if args.teacher_seeds != 1:
        config = replace(config, search=replace(config.search, teacher_seeds=args.teacher_seeds))
        seeded = Path(tempfile.mkdtemp()) / "config.yaml"
        seeded.write_text(yaml.safe_dump(config.to_dict()))
        args.config = str(seeded)
    print(describe() + f"; search.teacher_seeds {args.teacher_seeds}")
    load_mnist_family("fashion-mnist", "FashionMNIST", args.data_dir or config.data.data_dir, False)
    root = args.data_dir or config.data.data_dir or str(default_root())
    optuna.logging.set_verbosity(optuna.logging.ERROR)

    results = {}
    for mode, flags in MODES.items():
        with tempfile.TemporaryDirectory() as tmp:
            seconds, study = run_study(args.config, args.trials, flags, Path(tmp), args.data_dir)
            requested, trained = epochs(study, args.teacher_seeds)
            rows = [(t.number, t.params, t.values) for t in study.trials]
            results[mode] = (seconds, requested, trained, rows, study.trials)
            least = least_trainable(study, args.teacher_seeds)
            print(
                f"{mode:<12} {seconds:7.1f} s, teacher epochs trained {trained} of {requested} requested "
                f"({trained / requested:.2f})",
                flush=True,
            )
    print(
        f"least any sharing could train (each of the study's paths once, to its longest trial): {least} "
        f"({least / requested:.2f} of requested)"
    )
    same = all(r[3] == results["sharing off"][3] for r in results.values())
    print(f"same parameters and values in all three: {'yes' if same else 'NO'}")

    trials = results["sharing on"][4]
    student = conventional.Trial(
        0,
        0,
        config.student.epochs,
        config.student.batch_size,
        config.student.lr,
        (config.distill.withheld_classes or [0])[0],  # the conventional pipeline withholds one class
        config.distill.temperature,
        config.distill.alpha,
    )
    plan = [(t.params["batch_size"], t.params["epochs"]) for t in trials]
    if args.full:
        total = sum(
            conventional.run(root, replace(student, teacher_batch=b, teacher_epochs=e), seed=0)[0] for b, e in plan
        )
        how = "every trial run"
    else:
        load, per_batch, distill = conventional.epoch_costs(root, sorted({b for b, _ in plan}), student)
        total = sum(load + e * per_batch[b] + student.student_epochs * distill for b, e in plan)
        shown = ", ".join(f"batch {b} {s:.1f} s" for b, s in per_batch.items())
        print(
            f"conventional, measured per epoch: load {load:.1f} s; teacher epoch {shown}; "
            f"distillation epoch {distill:.1f} s"
        )
        how = "summed from the measured per-epoch costs"
    off = results["sharing off"][0]
    if args.teacher_seeds > 1:  # each seed a teacher and a distillation of its own, one after another
        total *= args.teacher_seeds
        how += f", times {args.teacher_seeds} teacher seeds (one student per seed, where sweetspot trains 1 + K)"
    print(f"conventional pipeline, the same {len(plan)} trials one by one: {total:.0f} s ({how})")
    for mode in ("sharing on", "every epoch"):
        seconds, requested, trained = results[mode][:3]
        print(
            f"{mode}: epochs trained {trained / requested:.2f} of requested (target <= 0.4); ratio conventional / "
            f"sweetspot {total / seconds:.1f} (target >= 10); wall time against sharing off {seconds / off:.2f}"
        )
    print(f"sharing off: ratio conventional / sweetspot {total / off:.1f}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
