"""Does a calibrated teacher give a better student? Issue 22's experiment, cell by cell.

A cell is a student (linear, mlp, cnn), a number of labels per class (10, 50, 200, all) and where the
soft labels come from (``train``: the teacher's own training examples; ``heldout``: a part of the
training split it never saw). In each cell, over N seeds (seed i: the i-th teacher seed of every
teacher and student seed i for every student, so that every difference is paired), the student is
trained from four teachers and on two baselines:

* ``reference``: the teacher a practitioner would train, ``reference.batch_size`` stopped at its
  best validation accuracy (``sweetspot.core.reference``);
* ``over-trained``: the same network continued on its path to the search's largest epochs;
* ``sweetspot-mcr``: the best trial of a sweetspot study ranked by ``missing_class_recall`` (the
  default objective, measured with the default linear probe students in the cell's regime);
* ``sweetspot-student``: the best trial of a study ranked by the cell's own student's accuracy in the
  cell's regime (for the linear student the probe study itself, for the others a study of that
  student without missing-class students);
* ``labels only`` (alpha 0) and ``label smoothing`` (factor 0.05, 0.1 or 0.2) on the labelled examples.

Every teacher's student gets the same grid, T in (1, 2, 4, 9) x alpha in (0.5, 0.9, 0.99), and label
smoothing its three factors: chosen on the validation split, scored on the test split, so that
neither a teacher nor distillation itself loses by a setting that was never tuned.

    .venv/bin/python benchmarks/student_gain.py --dataset fashion-mnist --students linear \\
        --labels 50 all --transfer train --seeds 5 --trials 16 --out docs/results/fashion-mnist/student-gain
    .venv/bin/python benchmarks/student_gain.py --tiny      # digits, tiny nets, 2 seeds: the tests

The studies and the teachers' checkpoints are kept in ``--work`` (default: ``OUT/work``), so a second
run (more seeds, another student) trains only what it lacks. ``--combine`` puts runs' CSVs together.
"""

from __future__ import annotations

import argparse
import csv
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import optuna
import torch
from machine import describe

from sweetspot.config import StudyConfig, config_from_dict, load_config
from sweetspot.core.checkpoints import CheckpointStore
from sweetspot.core.metrics import accuracy, normalized_entropy
from sweetspot.core.reference import best_epochs
from sweetspot.core.seeds import path_seed
from sweetspot.core.students import seeded_for_students, train_students
from sweetspot.core.teacher_paths import seeded_run
from sweetspot.core.training import predict_logits
from sweetspot.core.trial import TeacherParams, prepare, teacher_seeds, transfer_set, trial_path_key
from sweetspot.experiments.common import markdown_table, mean_sd, write_outputs
from sweetspot.experiments.kd_vs_ls import smoothing_logits
from sweetspot.results.export import ordered_front
from sweetspot.service.objective import Objective
from sweetspot.service.study import open_storage, open_study, queue_trials
from sweetspot.service.workers import drain

NAME = "student-gain"
TEMPERATURES = (1, 2, 4, 9)
ALPHAS = (0.5, 0.9, 0.99)
SMOOTHING = (0.05, 0.1, 0.2)
TEACHERS = ("reference", "over-trained", "sweetspot-mcr", "sweetspot-student")
BASELINES = ("labels only", "label smoothing")
PAYS_BY = 0.01  # a sweetspot teacher pays when its student beats both by 1 point and by more than 2 sd
STUDENTS = {  # the cell's student, with the base config's optimizer settings
    "linear": {"arch": "linear"},
    "mlp": {"arch": "mlp", "width": 128, "depth": 1},
    "cnn": {"arch": "paper-fashion-mnist-general", "epochs": 3},
}
TINY_STUDENTS = {"linear": {"arch": "linear"}, "mlp": {"arch": "mlp", "width": 16, "depth": 1},
                 "cnn": {"arch": "convnet", "channels": [4], "pool": [1]}}


def base_config(dataset: str, tiny: bool) -> dict[str, Any]:
    """The study the cells vary: the default digits study, or studies/fashion-mnist-mlp.yaml; --tiny
    shrinks the digits one to seconds."""
    if tiny:
        return {"name": "gain", "teacher": {"arch": "mlp", "width": 32, "depth": 2},
                "student": {"arch": "linear", "epochs": 5}, "search": {"batch_size": [32, 256], "epochs": [1, 6]},
                "reference": {"batch_size": 64, "patience": 2}}
    if dataset == "digits":
        return StudyConfig().to_dict()
    return load_config(Path(__file__).resolve().parents[1] / "studies" / "fashion-mnist-mlp.yaml").to_dict()


def cell_config(base: dict[str, Any], student: str, labels: int | None, transfer: str, tiny: bool) -> StudyConfig:
    """The base study with the cell's student and regime."""
    own = {k: v for k, v in base.get("student", {}).items() if k != "options"}
    raw = {**base, "student": own | (TINY_STUDENTS if tiny else STUDENTS)[student],
           "distill": {**base.get("distill", {}), "labels_per_class": labels, "transfer": transfer}}
    return config_from_dict(raw)


def fitted(config: StudyConfig) -> tuple[StudyConfig, Any]:
    """The cell's config and splits, its search's largest batch size lowered to the teacher's examples
    where ``transfer: heldout`` leaves it fewer than the base study searches (digits: 540)."""
    whole = prepare(replace(config, distill=replace(config.distill, transfer="train")), torch.device("cpu"))
    n = len(transfer_set(config, whole).teacher_splits.y_train)
    low, high = config.search.batch_size
    if high > n:
        config = replace(config, search=replace(config.search, batch_size=(low, 2 ** (n.bit_length() - 1))))
    return config, prepare(config, torch.device("cpu"))


def run_study(config: StudyConfig, splits: Any, trials: int, folder: Path, store: CheckpointStore | None) -> Any:
    """A sweetspot study of ``config`` in ``folder`` (kept: a second run only adds the trials it lacks)."""
    folder.mkdir(parents=True, exist_ok=True)
    study = open_study(open_storage(f"sqlite:///{folder / 'studies.db'}"), config.name, config)
    done = len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))
    if done < trials:
        queue_trials(study, trials - done)
        drain(study, Objective(config, splits, None, store))
    return study


def best_by(study: Any, metric: str) -> tuple[int, int, int]:
    """(trial, batch size, epochs) of the finished trial with the highest ``metric`` (ties: the lower number)."""
    if metric == study.metric_names[0]:
        best = ordered_front(study)[0]
    else:
        trials = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        best = max(trials, key=lambda t: (t.user_attrs[metric], -t.number))
    return best.number, best.params["batch_size"], best.params["epochs"]


def ranked_teachers(base: dict[str, Any], config: StudyConfig, splits: Any, student: str, trials: int, work: Path,
                    store: CheckpointStore | None, tiny: bool) -> dict[str, tuple[int, int, int]]:
    """The two sweetspot teachers of a cell: (trial, batch, epochs) by missing_class_recall and by the
    cell's student's accuracy."""
    d = config.distill
    regime = f"{d.transfer}-{d.labels_per_class or 'all'}"
    probe = replace(cell_config(base, "linear", d.labels_per_class, d.transfer, tiny),
                    name=f"probe-{regime}", search=config.search,
                    objectives={"missing_class_recall": "maximize", "student_val_acc": "maximize"})
    probe_study = run_study(probe, splits, trials, work / "studies", store)
    chosen = {"sweetspot-mcr": best_by(probe_study, "missing_class_recall")}
    if student == "linear":
        chosen["sweetspot-student"] = best_by(probe_study, "student_val_acc")
        return chosen
    own = replace(config, name=f"{student}-{regime}", objectives={"student_val_acc": "maximize"},
                  distill=replace(d, missing_classes=()))
    chosen["sweetspot-student"] = best_by(run_study(own, splits, trials, work / "studies", store), "student_val_acc")
    return chosen


def grid_name(temperatures: tuple[float, ...], alphas: tuple[float, ...]) -> str:
    """The grid as the CSV records it, e.g. ``T 1,2,4,9 x alpha 0.5,0.9,0.99``."""
    return f"T {','.join(map(str, temperatures))} x alpha {','.join(map(str, alphas))}"


FULL_GRID = grid_name(TEMPERATURES, ALPHAS)


def grid_scores(config: StudyConfig, x: Any, logits: torch.Tensor, y: torch.Tensor, n_classes: int,
                labelled: torch.Tensor | None, evaluation: dict[str, tuple[Any, torch.Tensor]],
                temperatures: tuple[float, ...] = TEMPERATURES, alphas: tuple[float, ...] = ALPHAS,
                ) -> list[dict[str, Any]]:
    """The cell's student distilled from ``logits`` at every (T, alpha) of the grid (the alphas of one T
    stacked), each scored on validation and test."""
    out = []
    for t in temperatures:
        masks = torch.ones(len(alphas), len(y), dtype=torch.bool)
        students = train_students(config.student, x, logits, y, n_classes, masks, temperature=float(t),
                                  alpha=list(alphas), generator=seeded_for_students(config),
                                  convention=config.distill.loss,
                                  labelled=None if labelled is None else labelled.expand(len(alphas), -1))
        scores = {split: [accuracy(o, ye) for o in predict_logits(students, xe)] for split, (xe, ye) in
                  evaluation.items()}
        out += [{"temperature": t, "alpha": a, "val_acc": scores["val"][i], "test_acc": scores["test"][i]}
                for i, a in enumerate(alphas)]
    return out


def baseline_scores(config: StudyConfig, x: Any, y: torch.Tensor, n_classes: int, labelled: torch.Tensor,
                    evaluation: dict[str, tuple[Any, torch.Tensor]]) -> dict[str, list[dict[str, Any]]]:
    """The labels-only student and the label-smoothing students (one per factor, stacked), trained on the
    labelled examples with the cell's student and schedule."""
    ls = torch.stack([smoothing_logits(y, n_classes, a, 1.0) for a in SMOOTHING])
    masks = torch.cat([labelled[None], labelled.expand(len(SMOOTHING), -1)])
    students = train_students(config.student, x, torch.cat([ls[:1], ls]), y, n_classes, masks, temperature=1.0,
                              alpha=[0.0, *[1.0] * len(SMOOTHING)], teacher_of=[0, *range(1, len(SMOOTHING) + 1)],
                              generator=seeded_for_students(config), convention=config.distill.loss)
    scores = {split: [accuracy(o, ye) for o in predict_logits(students, xe)] for split, (xe, ye) in evaluation.items()}
    return {
        "labels only": [{"smoothing": 0.0, "val_acc": scores["val"][0], "test_acc": scores["test"][0]}],
        "label smoothing": [{"smoothing": a, "val_acc": scores["val"][i + 1], "test_acc": scores["test"][i + 1]}
                            for i, a in enumerate(SMOOTHING)],
    }


def chosen_on_val(scores: list[dict[str, Any]]) -> dict[str, Any]:
    """The setting with the best validation accuracy (ties: the first of the grid)."""
    return max(scores, key=lambda s: s["val_acc"])


def run_cell(base: dict[str, Any], config: StudyConfig, splits: Any, student: str, seeds: list[int], n_seeds: int,
             trials: int, work: Path, store: CheckpointStore | None, tiny: bool,
             grid: tuple[tuple[float, ...], tuple[float, ...]] = (TEMPERATURES, ALPHAS)) -> list[dict[str, Any]]:
    """Rows of one cell: each teacher and baseline at each seed index, its chosen setting and scores."""
    d = config.distill
    cell = {"student": student, "labels_per_class": d.labels_per_class or "all", "transfer": d.transfer}
    recorded = {"grid": grid_name(*grid)}
    start = time.perf_counter()
    ranked = ranked_teachers(base, config, splits, student, trials, work, store, tiny)
    print(f"  studies: {', '.join(f'{k} trial {n} ({b} x {e})' for k, (n, b, e) in ranked.items())} "
          f"({time.perf_counter() - start:.0f} s)", flush=True)
    chosen = transfer_set(config, splits)
    x, y = splits.x_train.take(chosen.index), splits.y_train[chosen.index]
    labelled = None if d.labels_per_class is None else chosen.labelled
    evaluation = {"val": (splits.x_val, splits.y_val), "test": (splits.x_test, splits.y_test)}
    ref_batch = config.reference.batch_size
    lr = config.teacher.lr
    rows = []
    for i in seeds:
        start = time.perf_counter()
        config_i = replace(config, student=replace(config.student, seed=i))
        ref_seed = teacher_seeds(path_seed(config, ref_batch, lr), n_seeds)[i]
        ref_epochs = best_epochs(config, splits, [ref_seed], store)[0]
        longest = config.search.epochs[1]
        teachers = {"reference": (None, ref_batch, ref_epochs), "over-trained": (None, ref_batch, longest), **ranked}
        for name, (trial, batch, epochs) in teachers.items():
            seed = teacher_seeds(path_seed(config, batch, lr), n_seeds)[i]
            key = trial_path_key(config, TeacherParams(batch, epochs), seed, splits.x_train.device) if store else None
            teacher = seeded_run(config.teacher, chosen.teacher_splits, batch, epochs, lr, seed, store=store,
                                 key=key).teacher
            logits = predict_logits(teacher, x)
            best = chosen_on_val(grid_scores(config_i, x, logits, y, splits.n_classes, labelled, evaluation, *grid))
            rows.append({**cell, "teacher": name, "seed_index": i, "trial": trial, "batch_size": batch,
                         "epochs": epochs, "teacher_val_acc": round(accuracy(predict_logits(teacher, splits.x_val),
                                                                             splits.y_val), 6),
                         "teacher_entropy": round(normalized_entropy(logits, 9.0), 6), "smoothing": None,
                         **{k: round(v, 6) if isinstance(v, float) else v for k, v in best.items()}, **recorded})
        for name, scores in baseline_scores(config_i, x, y, splits.n_classes, chosen.labelled, evaluation).items():
            best = chosen_on_val(scores)
            rows.append({**cell, "teacher": name, "seed_index": i, "trial": None, "batch_size": None, "epochs": None,
                         "teacher_val_acc": None, "teacher_entropy": None, "temperature": None, "alpha": None,
                         **{k: round(v, 6) for k, v in best.items()}, **recorded})
        print(f"  seed {i}: {time.perf_counter() - start:.0f} s", flush=True)
    return rows


def paired(rows: list[dict[str, Any]], a: str, b: str) -> list[float]:
    """Test accuracy of teacher ``a``'s student minus ``b``'s, per seed index both have."""
    score = {(r["teacher"], r["seed_index"]): r["test_acc"] for r in rows}
    return [score[(a, i)] - score[(b, i)] for i in sorted({r["seed_index"] for r in rows})
            if (a, i) in score and (b, i) in score]


def pays(gains: list[float]) -> bool:
    mean, sd = mean_sd(gains)
    return len(gains) > 1 and mean >= PAYS_BY and mean > 2 * sd


def cells_of(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return list(dict.fromkeys((r["student"], r["labels_per_class"], r["transfer"]) for r in rows))


def summary(rows: list[dict[str, Any]]) -> tuple[str, list[str]]:
    """The markdown table (test accuracy, mean ± sd over the seeds; paired differences) and the cells
    where a sweetspot teacher pays."""
    def pm(values: list[float]) -> str:
        if not values:
            return "-"
        mean, sd = mean_sd(values)
        return f"{100 * mean:.1f} ± {100 * sd:.1f}" if len(values) > 1 else f"{100 * mean:.1f}"

    table, paying = [], []
    for cell in cells_of(rows):
        mine = [r for r in rows if (r["student"], r["labels_per_class"], r["transfer"]) == cell]
        n = len({r["seed_index"] for r in mine})
        accs = [pm([r["test_acc"] for r in mine if r["teacher"] == t]) for t in (*BASELINES, *TEACHERS)]
        gains = []
        for t in ("sweetspot-mcr", "sweetspot-student"):
            vs_ref, vs_labels = paired(mine, t, "reference"), paired(mine, t, "labels only")
            gains += [pm(vs_ref), pm(vs_labels)]
            if pays(vs_ref) and pays(vs_labels):
                paying.append(f"{cell[0]} student, {cell[1]} labels per class, soft labels on {cell[2]}: {t}")
        table.append([*map(str, cell), str(n), *accs, pm(paired(mine, "reference", "labels only")), *gains])
    header = ["student", "labels/class", "transfer", "seeds", *BASELINES, *TEACHERS, "reference - labels",
              "mcr - reference", "mcr - labels", "student-ranked - reference", "student-ranked - labels"]
    return markdown_table(header, table), paying


def markdown(rows: list[dict[str, Any]]) -> str:
    table, paying = summary(rows)
    grids = dict.fromkeys((r["student"], r["grid"]) for r in rows)
    own = "" if {g for _, g in grids} == {FULL_GRID} else (
        " (the grid per student: " + "; ".join(f"{s}: {g}" for s, g in grids) + ")")
    verdict = ("Cells where a sweetspot teacher's student beats both the reference teacher's and labels alone by at "
               f"least {100 * PAYS_BY:.0f} point and by more than twice the sd of the paired difference: "
               + ("; ".join(paying) if paying else "**none**") + ".")
    return (f"Student accuracy (%) on the test split, mean ± sd over the seeds (seed i: the i-th teacher seed of "
            f"every teacher, student seed i); each teacher's student at the (T, alpha) of T in {TEMPERATURES} x alpha "
            f"in {ALPHAS}{own} best on the validation split, label smoothing at the factor of {SMOOTHING} best there. "
            "Differences are paired by seed (mean ± sd of the difference, points).\n\n" + table + "\n" + verdict + "\n")


def draw(fig: Any, rows: list[dict[str, Any]]) -> None:
    ax = fig.subplots()
    cells = cells_of(rows)
    names = (*BASELINES, *TEACHERS)
    width = 0.8 / len(names)
    for j, name in enumerate(names):
        means, sds = [], []
        for cell in cells:
            values = [100 * r["test_acc"] for r in rows
                      if (r["student"], r["labels_per_class"], r["transfer"]) == cell and r["teacher"] == name]
            mean, sd = mean_sd(values) if values else (float("nan"), 0.0)
            means.append(mean)
            sds.append(sd)
        ax.bar([i + j * width for i in range(len(cells))], means, width, yerr=sds, capsize=2, label=name)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(cells))],
                  [f"{s}\n{n}/class\n{t}" for s, n, t in cells], fontsize=7)
    low = min(100 * r["test_acc"] for r in rows)
    ax.set_ylim(max(0, low - 5), 102.5)  # the top 2.5 points for the legend's one row
    ax.set(ylabel="student test accuracy (%)")
    ax.legend(fontsize=7, ncol=len(names), loc="upper center")
    ax.grid(alpha=0.3, axis="y")


def read_rows(path: Path) -> list[dict[str, Any]]:
    """A CSV this script wrote, with its numbers as numbers again."""
    def value(text: str) -> Any:
        if text == "":
            return None
        for kind in (int, float):
            try:
                return kind(text)
            except ValueError:
                pass
        return text

    with open(path, newline="") as handle:  # rows written before --temperatures/--alphas had the full grid
        return [{**{k: value(v) for k, v in row.items()}, "grid": row.get("grid") or FULL_GRID}
                for row in csv.DictReader(handle)]


def save(out: Path, rows: list[dict[str, Any]]) -> None:
    """The CSV, markdown table and figure of ``rows`` (after every cell: a stopped run keeps its cells)."""
    write_outputs(out, NAME, rows, markdown(rows), lambda fig: draw(fig, rows), (9, 4.5))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="digits and tiny nets (the tests)")
    parser.add_argument("--dataset", choices=("digits", "fashion-mnist"), default="fashion-mnist")
    parser.add_argument("--students", nargs="+", choices=tuple(STUDENTS), default=["linear"])
    parser.add_argument("--labels", nargs="+", default=["50", "all"], help="labels per class: numbers or all")
    parser.add_argument("--transfer", nargs="+", choices=("train", "heldout"), default=["train"])
    parser.add_argument("--temperatures", type=float, nargs="+", default=list(TEMPERATURES),
                        help=f"the grid's T (default: {' '.join(map(str, TEMPERATURES))})")
    parser.add_argument("--alphas", type=float, nargs="+", default=list(ALPHAS),
                        help=f"the grid's alpha (default: {' '.join(map(str, ALPHAS))})")
    parser.add_argument("--seeds", type=int, default=5, help="seeds per cell (default: 5)")
    parser.add_argument("--seed-indices", type=int, nargs="+", metavar="I", help="run only these seeds")
    parser.add_argument("--trials", type=int, default=16, help="trials of each sweetspot study (default: 16)")
    parser.add_argument("--out", type=Path, default=Path(NAME))
    parser.add_argument("--work", type=Path, help="studies and teacher checkpoints (default: OUT/work)")
    parser.add_argument("--combine", type=Path, nargs="+", metavar="CSV", help="put runs' CSVs together in --out")
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if args.combine:
        rows = [r for path in args.combine for r in read_rows(path)]
        save(args.out, rows)
        print(markdown(rows))
        return
    print(describe())
    dataset = "digits" if args.tiny else args.dataset
    seeds = 2 if args.tiny and args.seeds == 5 else args.seeds
    trials = 3 if args.tiny else args.trials
    base = base_config(dataset, args.tiny)
    if args.data_dir:
        base["data"] = {**base["data"], "data_dir": args.data_dir}
    grid = (tuple(int(t) if t == int(t) else t for t in args.temperatures), tuple(args.alphas))
    work = args.work or args.out / "work"
    store = CheckpointStore(work / "checkpoints", 2**40)
    rows: list[dict[str, Any]] = []
    for transfer in args.transfer:
        for labels in args.labels:
            for student in args.students:
                config, splits = fitted(cell_config(base, student, None if labels == "all" else int(labels), transfer,
                                                    args.tiny))
                print(f"cell: {student} student, {labels} labels per class, soft labels on {transfer}", flush=True)
                start = time.perf_counter()
                rows += run_cell(base, config, splits, student, args.seed_indices or list(range(seeds)), seeds, trials,
                                 work, store, args.tiny, grid)
                print(f"  cell: {time.perf_counter() - start:.0f} s", flush=True)
                save(args.out, rows)
    print(markdown(rows))


if __name__ == "__main__":
    main()
