import optuna
import pytest
import torch

from sweetspot.config import config_from_dict
from sweetspot.config.metric_registry import ENTROPY_GRID, RECORD_ATTRS, STUDENT_METRICS, TEACHER_METRICS, TRIAL_METRICS
from sweetspot.core.trial import TeacherParams, prepare, resolve_device, run_trial
from sweetspot.errors import ConfigError, DataError
from sweetspot.service.objective import Objective
from tests.conftest import TINY

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tiny():
    config = config_from_dict(TINY)
    return config, prepare(config, CPU)


def _science(metrics):
    return {k: v for k, v in metrics.items() if k != "time_s"}


def test_run_trial_stores_every_metric(tiny):
    config, splits = tiny
    metrics = run_trial(config, splits, TeacherParams(64, 2), seed=1).metrics
    assert set(metrics) == set(TRIAL_METRICS) | set(RECORD_ATTRS) - {"seed", "teacher_seeds"}  # one teacher seed
    assert list(metrics["teacher_entropy_by_T"]) == [str(t) for t in ENTROPY_GRID]
    assert metrics["teacher_entropy_by_T"]["20"] > metrics["teacher_entropy_by_T"]["1"]
    assert set(metrics["time_s"]) == {"teacher", "soft_labels", "student", "total"}
    assert all(0.0 <= metrics[k] <= 1.0 for k in TRIAL_METRICS if k != "kd_gain")
    assert metrics["kd_gain"] == pytest.approx(metrics["student_val_acc"] - metrics["label_student_val_acc"])



@pytest.mark.parametrize("objectives", [{"teacher_val_acc": "maximize"},
                                        {"teacher_ece": "minimize", "teacher_entropy": "maximize"}])
def test_a_study_of_teacher_metrics_alone_trains_no_student_and_measures_the_same_teacher(tiny, objectives):
    """An objective that needs no student (issue 22's cheap predictor) costs a trial its teacher only:
    the student metrics are null, and the teacher's are those of the full trial of the same teacher."""
    config, splits = tiny
    full = run_trial(config, splits, TeacherParams(64, 2), seed=1).metrics
    free_config = config_from_dict({**TINY, "objectives": objectives})
    free = run_trial(free_config, splits, TeacherParams(64, 2), seed=1).metrics
    assert set(free["time_s"]) == {"teacher", "soft_labels", "total"}
    assert all(free[m] is None for m in STUDENT_METRICS)
    assert {m: free[m] for m in (*TEACHER_METRICS, "teacher_entropy_by_T")} == \
        {m: full[m] for m in (*TEACHER_METRICS, "teacher_entropy_by_T")}
    assert "missing_class_recall_by_class" not in free

def test_the_labels_only_student_is_the_same_in_every_trial_and_is_trained_on_the_labels_alone(tiny):
    """Common random numbers: the baseline depends on the study, never on the trial's teacher; and it
    is a student of alpha 0, as ``sweetspot trial`` with distill.alpha 0 trains its full student."""
    config, splits = tiny
    a = run_trial(config, splits, TeacherParams(32, 1), seed=1).metrics
    b = run_trial(config, splits, TeacherParams(256, 4), seed=2).metrics
    assert a["student_val_acc"] != b["student_val_acc"]  # the teachers differ, and so do their students
    assert a["label_student_val_acc"] == b["label_student_val_acc"]
    alone = config_from_dict(TINY | {"distill": TINY["distill"] | {"alpha": 0.0}})
    c = run_trial(alone, splits, TeacherParams(32, 1), seed=1).metrics
    assert c["student_val_acc"] == pytest.approx(a["label_student_val_acc"], abs=1e-6)
    assert c["kd_gain"] == pytest.approx(0.0, abs=1e-6)


def test_labels_per_class_keeps_the_hard_labels_of_that_many_examples_only(tiny):
    """The labels-only student learns from N labelled examples per class: with one per class it is
    far worse than with all of them; the distilled student still sees every soft label, and its gain
    over the labels-only student grows."""
    config, splits = tiny
    everything = run_trial(config, splits, TeacherParams(32, 4), seed=1).metrics
    few = config_from_dict(TINY | {"distill": TINY["distill"] | {"labels_per_class": 1}})
    scarce = run_trial(few, splits, TeacherParams(32, 4), seed=1).metrics
    assert scarce["teacher_val_acc"] == everything["teacher_val_acc"]  # the teacher is the same
    assert scarce["label_student_val_acc"] < everything["label_student_val_acc"] - 0.2
    assert scarce["kd_gain"] > everything["kd_gain"] + 0.1


def test_transfer_heldout_trains_the_teacher_without_the_transfer_examples(tiny):
    from sweetspot.core.trial import transfer_set

    config, splits = tiny
    heldout = config_from_dict(TINY | {"distill": TINY["distill"] | {"transfer": "heldout", "heldout_fraction": 0.25}})
    chosen = transfer_set(heldout, splits)
    n_train, n_teacher = len(splits.y_train), len(chosen.teacher_splits.y_train)
    assert n_teacher == pytest.approx(0.75 * n_train, abs=splits.n_classes)
    transfer = set(chosen.index.tolist())
    assert not set(splits.y_train[chosen.index].tolist()) & set(heldout.distill.withheld_classes)
    # the teacher's examples are exactly the training examples outside the held-out part
    teacher_rows = {tuple(r) for r in chosen.teacher_splits.x_train[:].flatten(1).tolist()}
    own = [i for i in range(n_train) if tuple(splits.x_train[i : i + 1].flatten(1)[0].tolist()) in teacher_rows]
    assert len(own) == n_teacher and not transfer & set(own)
    assert torch.equal(transfer_set(config, splits).teacher_splits.y_train, splits.y_train)  # train: all of it
    a = run_trial(config, splits, TeacherParams(32, 2), seed=1).metrics
    b = run_trial(heldout, splits, TeacherParams(32, 2), seed=1).metrics
    assert a["teacher_val_acc"] != b["teacher_val_acc"]
    # its teachers walk paths of their own: a checkpoint of the whole split's teacher is never resumed
    from sweetspot.core.trial import trial_path_key

    assert trial_path_key(config, TeacherParams(32, 2), 1, CPU) != trial_path_key(heldout, TeacherParams(32, 2), 1, CPU)


def test_run_trial_twice_with_one_seed_gives_the_same_metrics(tiny):
    config, splits = tiny
    a = run_trial(config, splits, TeacherParams(32, 3), seed=7).metrics
    b = run_trial(config, splits, TeacherParams(32, 3), seed=7).metrics
    c = run_trial(config, splits, TeacherParams(32, 3), seed=8).metrics
    assert _science(a) == _science(b)
    assert _science(a) != _science(c)


def test_run_trial_more_training_lowers_entropy(tiny):
    # the paper's mechanism on a tiny net: small batches for many epochs -> confident soft labels
    config, splits = tiny
    short = run_trial(config, splits, TeacherParams(256, 1), seed=0).metrics
    long = run_trial(config, splits, TeacherParams(32, 30), seed=0).metrics
    assert long["teacher_entropy"] < short["teacher_entropy"] - 0.1
    assert long["teacher_val_acc"] > short["teacher_val_acc"]


def test_objective_records_metrics_as_user_attributes_and_returns_the_objectives(tiny):
    config, splits = tiny
    config = config_from_dict(TINY | {"search": TINY["search"] | {"repeats": True}})  # no reuse: two trainings
    study = optuna.create_study(directions=list(config.objectives.values()))
    study.optimize(Objective(config, splits), n_trials=2)
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        assert set(TRIAL_METRICS) | set(RECORD_ATTRS) - {"teacher_seeds"} <= set(trial.user_attrs)
        assert trial.values == [trial.user_attrs[m] for m in config.objectives]
    assert study.trials[0].user_attrs["seed"] != study.trials[1].user_attrs["seed"]


def test_objective_fails_a_diverging_trial_and_the_study_goes_on():
    config = config_from_dict(
        TINY | {"teacher": {"arch": "mlp", "width": 32, "depth": 2, "optimizer": "sgd", "lr": 1e12}}
    )
    splits = prepare(config, CPU)
    study = optuna.create_study(directions=list(config.objectives.values()))
    study.optimize(Objective(config, splits), n_trials=2)  # no exception escapes
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2
    assert "teacher loss became nan" in study.trials[0].user_attrs["fail_reason"]


def test_prepare_rejects_a_batch_range_larger_than_the_training_split():
    config = config_from_dict(TINY | {"search": {"batch_size": [16, 4096], "epochs": [1, 3]}})
    with pytest.raises(ConfigError, match=r"search.batch_size: 4096 is larger than the training split \(1077 examples"):
        prepare(config, CPU)


def test_prepare_rejects_withheld_classes_not_in_the_dataset():
    config = config_from_dict(TINY | {"distill": {"withheld_classes": [3, 12]}})
    with pytest.raises(DataError, match=r"\[12\] not in the dataset"):
        prepare(config, CPU)


def test_resolve_device():
    assert resolve_device("cpu") == CPU
    assert resolve_device("auto").type in ("cpu", "cuda")
    with pytest.raises(ConfigError, match="unknown device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="'cuda:0' is not available here"):
            resolve_device("cuda:0")


def test_objective_reuses_a_finished_trial_with_the_same_parameters_unless_repeats_are_asked():
    one_point = TINY | {"search": {"batch_size": [32, 32], "epochs": [2, 2]}}
    for repeats in (False, True):
        config = config_from_dict(one_point | {"search": one_point["search"] | {"repeats": repeats}})
        study = optuna.create_study(directions=list(config.objectives.values()))
        study.optimize(Objective(config, prepare(config, CPU)), n_trials=2)
        first, second = study.trials
        assert first.params == second.params
        if repeats:
            assert "reused_from" not in second.user_attrs
            assert second.user_attrs["seed"] != first.user_attrs["seed"]
        else:
            assert second.user_attrs["reused_from"] == 0
            assert second.values == first.values
            assert second.user_attrs["seed"] == first.user_attrs["seed"]  # an export retrains the same teacher
            assert second.user_attrs["time_s"] == first.user_attrs["time_s"]


def test_the_reference_teacher_stops_at_its_best_validation_accuracy_and_is_scored_as_a_trial(tiny):
    """The teacher a practitioner would train: the reference batch size, early-stopped on validation
    accuracy; its figures are those of the trial with its batch size and best epoch."""
    from sweetspot.core.reference import BestEpoch, run_reference
    from sweetspot.core.trial import trial_seed

    config, splits = tiny
    config = config_from_dict(TINY | {"search": TINY["search"] | {"epochs": [1, 12]},
                                      "reference": {"batch_size": 64, "patience": 2}})
    reference = run_reference(config, splits)
    (epochs,) = reference["epochs"]
    assert 1 <= epochs <= 12 and reference["batch_size"] == 64 and reference["sd"] == {}
    params = TeacherParams(64, epochs)
    trial = run_trial(config, splits, params, trial_seed(config, 5, params)).metrics
    assert reference["mean"]["student_val_acc"] == trial["student_val_acc"]
    assert reference["mean"]["teacher_val_acc"] == trial["teacher_val_acc"]
    assert reference["mean"]["label_student_val_acc"] == trial["label_student_val_acc"]  # the same baseline
    watch = BestEpoch(patience=2)
    assert [watch({"epoch": e, "accuracy": a}) is not None for e, a in
            enumerate([0.5, 0.7, 0.7, 0.8, 0.8, 0.8], start=1)] == [False] * 5 + [True]
    assert watch.epoch == 4  # the first of equal accuracies


def test_the_reference_teacher_over_teacher_seeds_gives_each_seed_its_own_epochs_and_an_sd(tiny):
    from sweetspot.core.reference import run_reference

    config, splits = tiny
    config = config_from_dict(TINY | {"search": TINY["search"] | {"epochs": [1, 8], "teacher_seeds": 2},
                                      "reference": {"batch_size": 32, "patience": 1}})
    reference = run_reference(config, splits)
    assert len(reference["epochs"]) == len(reference["teacher_seeds"]) == 2
    assert set(reference["sd"]) == set(reference["mean"]) and len(reference["values"]["student_val_acc"]) == 2
