"""Best teacher configurations out of a study: the Pareto front, scored once on the test split.

Selection rule (also written into every export): the study's Pareto-optimal trials, ordered by the
first objective (best first), ties broken by the following objectives in order, then by the lower
trial number; the first of that order is marked ``best``. With one objective the front is the set of
trials sharing the best value.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import optuna
import yaml
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from sweetspot.config import StudyConfig
from sweetspot.config.metric_registry import TRIAL_METRICS
from sweetspot.core.splits import Splits
from sweetspot.core.trial import params_from_dict, run_trial, teacher_seeds
from sweetspot.errors import ConfigError, StorageError
from sweetspot.results.teachers import teacher_recipe
from sweetspot.service.study import metric_names

SELECTION_RULE = (
    "Pareto-optimal trials ordered by the first objective (best first), ties broken by the "
    "following objectives in order, then by the lower trial number; the first is marked best"
)
CONFIRM_RULE = (
    "Pareto-optimal trials of the study, each teacher retrained with several teacher seeds (confirmed.teacher_seeds), "
    "ordered by the mean of the first objective over those seeds (best first), ties broken by the means of the "
    "following objectives, then by the lower trial number; the first is marked best"
)
EXPORT_FORMATS = ("yaml", "json")
# the missing-class figures an export scores on the test split (the bias shift still chosen on validation inputs)
TEST_MISSING_CLASS = ("missing_class_recall", "missing_class_recall_corrected", "missing_class_acc",
                      "missing_class_recall_by_class")


def best_first(study: optuna.Study, trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """``trials`` (finished, with values) in the documented order: by the first objective, ties by
    the following ones in order, then by the lower trial number (see SELECTION_RULE)."""

    def key(trial: FrozenTrial) -> tuple[float, ...]:
        signed = [-v if d == StudyDirection.MAXIMIZE else v for v, d in zip(trial.values, study.directions)]
        return (*signed, trial.number)

    return sorted(trials, key=key)


def ordered_front(study: optuna.Study) -> list[FrozenTrial]:
    """The Pareto front in the documented order, each teacher once: a trial that reused another's
    result (``reused_from``) is left out when that trial is on the front."""
    front = study.best_trials
    numbers = {t.number for t in front}
    return best_first(study, [t for t in front if t.user_attrs.get("reused_from") not in numbers])


BASELINE_COLUMNS = ("student_val_acc", "kd_gain", "missing_class_recall", "teacher_val_acc", "teacher_entropy")


def beside_baselines(study: optuna.Study, reference: dict[str, Any] | None) -> list[dict[str, Any]]:
    """The best trial, the reference teacher and the labels-only student as rows of one table (the
    validation split): {"name", "figures": {metric: (mean, sd or None)}}. The labels-only student is
    the same in every trial and in the reference (common random numbers): the best trial's is shown.
    Empty for a study with no finished trial."""
    finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not finished:
        return []
    best = ordered_front(study)[0]
    attrs = best.user_attrs
    sd = (attrs.get("teacher_seeds") or {}).get("sd", {})
    rows = [{"name": f"best trial {best.number} ({best.params['batch_size']} x {best.params['epochs']})",
             "figures": {m: (attrs.get(m), sd.get(m)) for m in BASELINE_COLUMNS}}]
    if reference is not None and reference.get("failed"):
        rows.append({"name": f"reference teacher (batch {reference['batch_size']}): {reference['failed']}",
                     "figures": {}})
    elif reference is not None:
        epochs = "/".join(str(e) for e in reference["epochs"])
        rows.append({"name": f"reference teacher ({reference['batch_size']} x {epochs}, best val acc)",
                     "figures": {m: (reference["mean"].get(m), reference["sd"].get(m)) for m in BASELINE_COLUMNS}})
    if attrs.get("label_student_val_acc") is not None:
        rows.append({"name": "labels alone (no teacher)",
                     "figures": {"student_val_acc": (attrs["label_student_val_acc"], None)}})
    return rows


def show_figure(mean: float | None, sd: float | None) -> str:
    """``0.912 ± 0.004``, ``0.912`` without an sd, ``-`` for nothing."""
    if mean is None:
        return "-"
    return f"{mean:.3f}" + ("" if sd is None else f" ± {sd:.3f}")


def build_export(
    study: optuna.Study,
    config: StudyConfig,
    storage_shown: str,
    test_scores: dict[int, dict[str, float | None]],
    confirmed: dict[int, dict[str, Any]] | None = None,
    reference: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The export document. ``test_scores`` maps trial number -> its test-split figures;
    ``confirmed`` (``confirm``) trial number -> its figures over several teacher seeds, which then
    order the teachers (CONFIRM_RULE) instead of the study's single-seed values; ``reference`` the
    study's reference teacher (``study.ensure_reference``), exported beside them."""
    front = ordered_front(study)
    names = metric_names(study)
    if confirmed:
        front = best_by_mean(study, front, confirmed)
    teachers = []
    for rank, trial in enumerate(front):
        entry = {
            "trial": trial.number,
            "best": rank == 0,
            "batch_size": trial.params["batch_size"],
            "epochs": trial.params["epochs"],
            "params": dict(trial.params),
            "values": dict(zip(names, trial.values)),
            "recipe": teacher_recipe(config, trial),
            "metrics": {k: v for k, v in sorted(trial.user_attrs.items()) if k not in ("seed", "queued_by")},
            "test": test_scores[trial.number],
        }
        if confirmed:
            entry["confirmed"] = confirmed[trial.number]
        teachers.append(entry)
    return {
        "study": study.study_name,
        "storage": storage_shown,
        "objectives": dict(config.objectives),
        "selection_rule": CONFIRM_RULE if confirmed else SELECTION_RULE,
        "best_trial": front[0].number,
        "config": config.to_dict(),
        "teachers": teachers,
        "reference": reference,
    }


def confirm(config: StudyConfig, splits: Splits, trials: list[FrozenTrial], n_seeds: int) -> dict[int, dict[str, Any]]:
    """Each trial's teacher with ``n_seeds`` teacher seeds (the trial's own first, whose figures the
    study holds already, with the other seeds of a ``search.teacher_seeds`` study; then the seeds
    it lacks, derived from its own and trained stacked), its students as in every trial (common random
    numbers): per scalar metric the values, their mean and sd, on the validation split."""
    out: dict[int, dict[str, Any]] = {}
    for trial in trials:
        attrs = trial.user_attrs
        known = _per_seed(attrs)
        seeds = teacher_seeds(attrs["seed"], max(n_seeds, len(known)))
        runs = known[:n_seeds]
        if len(runs) < n_seeds:
            extra = run_trial(config, splits, params_from_dict(trial.params), seeds[len(runs)],
                              seeds=seeds[len(runs):n_seeds])
            runs += _per_seed(extra.metrics)
        values = {m: [r.get(m) for r in runs] for m in TRIAL_METRICS if all(r.get(m) is not None for r in runs)}
        out[trial.number] = {
            "teacher_seeds": seeds[:n_seeds],
            "values": values,
            "mean": {m: statistics.fmean(v) for m, v in values.items()},
            "sd": {m: statistics.stdev(v) if len(v) > 1 else 0.0 for m, v in values.items()},
        }
    return out


def _per_seed(metrics: dict[str, Any]) -> list[dict[str, Any]]:
    """A trial's scalar metrics, one dict per teacher seed (a study before teacher seeds: one)."""
    seeded = metrics.get("teacher_seeds")
    if not seeded:
        return [metrics]
    return [{m: values[i] for m, values in seeded["values"].items()} for i in range(len(seeded["seeds"]))]


def best_by_mean(
    study: optuna.Study, trials: list[FrozenTrial], confirmed: dict[int, dict[str, Any]]
) -> list[FrozenTrial]:
    """``trials`` ordered by their confirmed means, as SELECTION_RULE orders single values."""
    names = metric_names(study)

    def key(trial: FrozenTrial) -> tuple[float, ...]:
        means = confirmed[trial.number]["mean"]
        signed = [-means[n] if d == StudyDirection.MAXIMIZE else means[n] for n, d in zip(names, study.directions)]
        return (*signed, trial.number)

    return sorted(trials, key=key)


def front_or_fail(study: optuna.Study) -> list[FrozenTrial]:
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise StorageError(f"study {study.study_name!r} has no finished trial to export")
    return ordered_front(study)


def export_format(out: str | None, fmt: str | None) -> str:
    """``--format`` if given, else from the ``--out`` suffix, else yaml."""
    if fmt is None:
        fmt = "json" if out and Path(out).suffix.lower() == ".json" else "yaml"
    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {fmt!r} (allowed: {', '.join(EXPORT_FORMATS)})")
    return fmt


def render(document: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(document, indent=2) + "\n"
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def score_on_test(config: StudyConfig, splits: Splits, trials: list[FrozenTrial]) -> dict[int, dict[str, Any]]:
    """Retrain each trial's teacher and student from its recipe and score them on the test split:
    the only place sweetspot reads the test split. Retraining also checks that the trial
    reproduces (same soft-label entropy on the transfer set as the study recorded)."""
    scores: dict[int, dict[str, Any]] = {}
    for trial in trials:
        outcome = run_trial(config, splits, params_from_dict(trial.params), trial.user_attrs["seed"], split="test")
        m = outcome.metrics  # run_trial names its figures *_val_*; here they are on the test split
        scores[trial.number] = {
            "teacher_acc": m["teacher_val_acc"],
            "student_acc": m["student_val_acc"],
            "student_withheld_acc": m["student_withheld_acc"],
            "student_teacher_agreement": m["student_teacher_agreement"],
            **{k: m.get(k) for k in TEST_MISSING_CLASS},
            "reproduces_study": abs(m["teacher_entropy"] - trial.user_attrs["teacher_entropy"]) < 1e-4,
        }
    return scores
