"""What our Table 5 gap to the paper is made of: the recipe of benchmarks/paper_table5.py (Fashion-MNIST
small conv teacher trained at batch 32 for 5 epochs, its General student 3 epochs at batch 256, Eq. 4,
alpha 0.99) changed one thing at a time, at one temperature, every class missing in turn. Each variant
runs on the same teacher seeds and student seed as the recipe, so its effect is a paired difference:
mean ± sd over the teacher seeds of (variant - recipe), each the mean over the ten missing classes.

    .venv/bin/python benchmarks/table5_ablation.py --checkpoints DIR --seed-indices 1 2 [--variants ...]
        [--temperature 9] [--recipe-from TABLE5/missing-class.csv] [--out table5-ablation]
    .venv/bin/python benchmarks/table5_ablation.py --combine A/ablation.csv B/ablation.csv --out DIR
    .venv/bin/python benchmarks/table5_ablation.py --tiny     # digits and small nets: the tests

``--checkpoints`` takes the folder paper_table5.py kept its teachers in (the recipe's teachers are then
loaded, not retrained). Seeds can run in separate processes and be put together with ``--combine``.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
from machine import describe
from paper_table5 import KERAS_TEACHER, study_config

from sweetspot.config import StudyConfig, config_from_dict
from sweetspot.core.checkpoints import CheckpointStore
from sweetspot.core.trial import prepare, resolve_device, teacher_seeds
from sweetspot.experiments import Setup, TeacherSpec, missing_class
from sweetspot.experiments.common import markdown_table, spread

# One change each to the recipe; what the paper does not say, or says otherwise than Keras's example.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "recipe": ("as paper_table5.py", {}),
    "hinton": ("soft term times T^2 (Hinton's loss, Keras's example)", {"loss": "hinton"}),
    "alpha-0.9": ("alpha 0.9: ten times the hard-label weight (Keras: 0.9 with T^2)", {"alpha": 0.9}),
    "teacher-epochs-2": ("teacher 2 epochs instead of 5", {"teacher_epochs": 2}),
    "teacher-batch-256": ("teacher at batch 256 instead of 32: 1/8 the steps", {"teacher_batch": 256}),
    "student-epochs-9": ("student 9 epochs at batch 256: 3 x the steps", {"student_epochs": 9}),
    "student-batch-32": ("student at batch 32 (Keras's): 8 x the steps", {"student_batch": 32}),
}


def variant(config: StudyConfig, teacher: TeacherSpec, change: dict[str, Any]) -> tuple[StudyConfig, TeacherSpec]:
    """The config and teacher of one variant."""
    student = replace(config.student, epochs=change.get("student_epochs", config.student.epochs),
                      batch_size=change.get("student_batch", config.student.batch_size))
    distill = replace(config.distill, loss=change.get("loss", config.distill.loss),
                      alpha=change.get("alpha", config.distill.alpha))
    teacher = replace(teacher, batch_size=change.get("teacher_batch", teacher.batch_size),
                      epochs=change.get("teacher_epochs", teacher.epochs))
    return replace(config, student=student, distill=distill), teacher


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="digits and small nets (the tests)")
    parser.add_argument("--variants", nargs="+", choices=tuple(VARIANTS), default=list(VARIANTS),
                        help="which variants (default: all); the differences are to 'recipe'")
    parser.add_argument("--temperature", type=float, default=9.0, help="T (default: 9, the paper's)")
    parser.add_argument("--teacher-seeds", type=int, help="teacher seeds the indices choose from (default: 3; "
                        "--tiny: 1)")
    parser.add_argument("--seed-indices", type=int, nargs="+", metavar="I", help="which teacher seeds (default: all)")
    parser.add_argument("--checkpoints", type=Path, help="the teachers' folder (paper_table5.py --checkpoints)")
    parser.add_argument("--recipe-from", type=Path, nargs="+", metavar="CSV",
                        help="the recipe's students from paper_table5.py's missing-class.csv of the same teachers, "
                        "instead of training them again")
    parser.add_argument("--combine", type=Path, nargs="+", metavar="CSV", help="put earlier runs together")
    parser.add_argument("--out", type=Path, default=Path("table5-ablation"))
    parser.add_argument("--device", default="auto")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    temperature = int(args.temperature) if args.temperature.is_integer() else args.temperature
    if args.combine:
        rows = [row for path in args.combine for row in read_rows(path)]
        seeds = {r["teacher_seed"] for r in rows}
    else:
        rows, seeds = run(args, parser, temperature)
    if args.recipe_from:  # for the seeds whose recipe no run here trained
        seeds -= {r["teacher_seed"] for r in rows if r["variant"] == "recipe"}
        rows = [{"variant": "recipe", **r} for path in args.recipe_from for r in missing_class.read_rows(path)
                if r["teacher"] == "small" and r["temperature"] == temperature and r["teacher_seed"] in seeds] + rows
    print(save(rows, args.out))


def save(rows: list[dict[str, Any]], out: Path) -> str:
    """``out/ablation.csv`` and ``out/ablation.md``; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "ablation.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    table = summary(rows)
    (out / "ablation.md").write_text(table)
    return table


def run(args: argparse.Namespace, parser: argparse.ArgumentParser,
        temperature: float) -> tuple[list[dict[str, Any]], set[int]]:
    """The students of each variant (in VARIANTS' order; the recipe not where --recipe-from gives it),
    and the teacher seeds they were run on."""
    seeds = teacher_seeds(0, args.teacher_seeds or (1 if args.tiny else 3))
    indices = args.seed_indices if args.seed_indices is not None else range(len(seeds))
    if not all(0 <= i < len(seeds) for i in indices):
        parser.error(f"--seed-indices: each must be 0 to {len(seeds) - 1} (--teacher-seeds {len(seeds)})")
    print(describe())
    raw = study_config(args.tiny, 1)
    if args.data_dir:
        raw["data"]["data_dir"] = args.data_dir
    config = config_from_dict(raw)
    device = resolve_device(args.device)
    splits = prepare(config, device)
    recipe = TeacherSpec("small", "convnet" if args.tiny else "paper-fashion-mnist-small",
                         *((64, 2) if args.tiny else KERAS_TEACHER))
    store = CheckpointStore(args.checkpoints, 2**40) if args.checkpoints else None
    names = [v for v in VARIANTS if v in args.variants and not (v == "recipe" and args.recipe_from)]
    print(f"recipe: teacher {recipe.arch} at batch {recipe.batch_size} for {recipe.epochs} epochs; student "
          f"{config.student.arch} {config.student.epochs} epochs at batch {config.student.batch_size}; loss "
          f"{config.distill.loss}, alpha {config.distill.alpha}, T={temperature}", flush=True)
    rows = []
    for i in indices:
        for name in names:
            start = time.perf_counter()
            config_v, teacher = variant(config, replace(recipe, seed=seeds[i]), VARIANTS[name][1])
            setup = Setup(config_v, splits, (teacher,), split="test", checkpoints=store)
            ks = tuple(range(splits.n_classes))
            for row in missing_class.teacher_rows(setup, teacher, ks, (temperature,), lambda: None):
                rows.append({"variant": name, **row})
            print(f"teacher seed {seeds[i]}, {name}: {time.perf_counter() - start:.0f} s", flush=True)
            save(rows, args.out)  # so far: an interrupted run keeps what it finished
    return rows, {seeds[i] for i in indices}


def read_rows(path: Path) -> list[dict[str, Any]]:
    with open(path, newline="") as handle:
        return [{**row, "teacher_seed": int(row["teacher_seed"])} for row in csv.DictReader(handle)]


def summary(rows: list[dict[str, Any]]) -> str:
    """A markdown table: each variant's mean over the missing classes (mean ± sd over the teacher
    seeds it ran on), raw and bias-corrected, and its paired difference to the recipe on those seeds."""

    def per_seed(name: str, key: str) -> dict[int, float]:
        mine = [r for r in rows if r["variant"] == name]
        return {s: 100 * statistics.fmean(float(r[key]) for r in mine if r["teacher_seed"] == s)
                for s in dict.fromkeys(r["teacher_seed"] for r in mine)}

    def paired(variant: dict[int, float], recipe: dict[int, float]) -> list[float]:
        return [variant[s] - recipe[s] for s in sorted(variant) if s in recipe]

    reference = {key: per_seed("recipe", key) for key in ("student_acc_on_class", "corrected_acc_on_class")}
    seeds = sorted({r["teacher_seed"] for r in rows})
    table = []
    for name in dict.fromkeys(r["variant"] for r in rows):
        raw, corrected = per_seed(name, "student_acc_on_class"), per_seed(name, "corrected_acc_on_class")
        table.append([name, VARIANTS[name][0], len(raw), spread(list(raw.values()), scale=1),
                      spread(paired(raw, reference["student_acc_on_class"]), scale=1),
                      spread(list(corrected.values()), scale=1),
                      spread(paired(corrected, reference["corrected_acc_on_class"]), scale=1),
                      spread(list(per_seed(name, "student_acc").values()), scale=1)])
    t = float(rows[0]["temperature"])
    return (f"Student recall (%) on the missing class, mean over the classes, at T={t:g}, test split; mean ± sd over "
            f"{len(seeds)} teacher seed{'s' * (len(seeds) > 1)} ({', '.join(map(str, seeds))}); Δ: the paired "
            "difference to the recipe.\n\n"
            + markdown_table(["variant", "change", "seeds", "recall", "Δ recall", "bias-corrected", "Δ corrected",
                              "student acc (all classes, k-less students)"], table))


if __name__ == "__main__":
    main()
